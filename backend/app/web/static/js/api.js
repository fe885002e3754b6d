// The API client: bearer token, problem documents turned into errors with words for people.

let token = null;
let signedOut = () => {};

export function setToken(value) {
  token = value;
}

export function onSignedOut(callback) {
  signedOut = callback;
}

export class ApiError extends Error {
  constructor(status, detail, problem = {}, retryAfter = null) {
    super(detail);
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

async function failure(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    // not a problem document: the status says enough
  }
  const seconds = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  const detail = problem.detail || problem.title || response.statusText || "request failed";
  return new ApiError(response.status, detail, problem, Number.isNaN(seconds) ? null : seconds);
}

// fetch with the bearer token; a non-2xx answer throws an ApiError. Returns the Response.
export async function send(method, path, { body, headers = {}, signal } = {}) {
  const init = { method, headers: { ...headers }, signal };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const error = await failure(response);
    if (response.status === 401) signedOut();
    throw error;
  }
  return response;
}

export async function json(method, path, options) {
  const response = await send(method, path, options);
  return response.status === 204 ? null : response.json();
}

// The `rel="next"` URL of an RFC 8288 Link header, if any.
export function nextLink(response) {
  const header = response.headers.get("Link") || "";
  for (const part of header.split(",")) {
    const match = part.match(/<([^>]*)>\s*;\s*rel="?next"?/);
    if (match) return match[1];
  }
  return null;
}

// Words for a person, and whether trying again may help.
export function explain(error) {
  if (error instanceof ApiError) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again shortly.";
    switch (error.status) {
      case 401:
        return { text: "Your sign-in has expired. Please sign in again.", retry: false };
      case 404:
        return { text: "That no longer exists.", retry: false };
      case 409:
        return { text: `Not now: ${error.message}.`.replace(/\.\.$/, "."), retry: true };
      case 413:
        return { text: "That is too large to send.", retry: false };
      case 422:
        return { text: `Not accepted: ${error.message}`, retry: false };
      case 429:
        return { text: `Too many requests.${wait}`, retry: true };
      case 503:
        return { text: `The service is unavailable right now.${wait}`, retry: true };
      default:
        return { text: `Something went wrong (${error.status}): ${error.message}`, retry: true };
    }
  }
  if (error?.name === "AbortError") return { text: "Stopped.", retry: false };
  return { text: "Cannot reach the server. Check the connection.", retry: true };
}
