// Signing in: a development token by name (AUTH_MODE=local on a development server), or the
// Authorization Code flow with PKCE (S256) against the OIDC provider, as a public client. The
// token lives in sessionStorage (this tab only, gone with it), never in a cookie.

const TOKEN_KEY = "agent-stack.token";
const PKCE_KEY = "agent-stack.pkce";

export function savedToken() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null");
    if (saved && saved.expires_at > Date.now() + 5000) return saved;
  } catch {
    // a damaged entry is no token
  }
  sessionStorage.removeItem(TOKEN_KEY);
  return null;
}

function keep(answer, name) {
  const saved = {
    token: answer.access_token,
    name,
    expires_at: Date.now() + (answer.expires_in || 3600) * 1000,
  };
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify(saved));
  return saved;
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export async function devSignIn(name) {
  const response = await fetch("/auth/dev-token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.detail || `sign-in refused (${response.status})`);
  }
  return keep(await response.json(), name);
}

function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function discover(issuer) {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`the identity provider answered ${response.status}`);
  return response.json();
}

const redirectUri = () => `${location.origin}/`;

// Leaves the page for the provider's sign-in; it comes back to `/` with ?code=&state=.
export async function startOidcSignIn(oidc) {
  const provider = await discover(oidc.issuer);
  const verifier = randomString();
  const state = randomString();
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(provider.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: oidc.client_id,
    redirect_uri: redirectUri(),
    scope: "openid profile email",
    state,
    code_challenge: base64url(digest),
    code_challenge_method: "S256",
    ...(oidc.audience ? { audience: oidc.audience } : {}),
  }).toString();
  location.assign(url.toString());
}

// On the way back from the provider: trade the code for a token (null if this is no return).
export async function finishOidcSignIn(oidc) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  history.replaceState(null, "", `/${location.hash}`); // the code is single-use: drop it
  const pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  if (params.has("error")) {
    throw new Error(params.get("error_description") || params.get("error"));
  }
  if (!pending || pending.state !== params.get("state")) {
    throw new Error("The sign-in answer does not match the request; please try again.");
  }
  const provider = await discover(oidc.issuer);
  const response = await fetch(provider.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri(),
      client_id: oidc.client_id,
      code_verifier: pending.verifier,
    }),
  });
  if (!response.ok) throw new Error(`the identity provider refused the sign-in (${response.status})`);
  return keep(await response.json(), null);
}
