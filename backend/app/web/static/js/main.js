// Boot: read /config.json, sign in (or come back from the provider), then the chat.

import { json, onSignedOut, setToken } from "./api.js";
import { devSignIn, finishOidcSignIn, forgetToken, savedToken, startOidcSignIn } from "./auth.js";
import { createChat } from "./chat.js";
import { createSidebar } from "./sidebar.js";
import { report } from "./ui.js";

const $ = (id) => document.getElementById(id);

function sessionFromHash() {
  const match = location.hash.match(/^#session=(\d+)$/);
  return match ? Number(match[1]) : null;
}

function showSignIn(config, message = "") {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  const local = config.dev_sign_in;
  $("signin-local").hidden = !local;
  $("signin-oidc").hidden = !config.oidc;
  if (!local && !config.oidc) {
    $("signin-error").textContent =
      "This server offers no sign-in for the page: set OIDC_CLIENT_ID (oidc mode), or run it in development with AUTH_MODE=local.";
  }
  (local ? $("signin-name") : $("signin-oidc-button")).focus();
}

function startApp(saved) {
  setToken(saved.token);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("who").textContent = saved.name ? `Signed in as ${saved.name}` : "";
  if (!saved.name) {
    json("GET", "/api/users/me").then((me) => { $("who").textContent = `Signed in as ${me.email || me.subject}`; }, () => {});
  }

  const sidebarPanel = $("sidebar");
  const toggle = $("toggle-sidebar");
  const closeSidebar = () => {
    sidebarPanel.classList.remove("open");
    toggle.setAttribute("aria-expanded", "false");
  };
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && sidebarPanel.classList.contains("open")) {
      closeSidebar();
      toggle.focus();
    }
  });
  toggle.addEventListener("click", () => {
    const open = sidebarPanel.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
    if (open) $("new-chat").focus();
  });

  let sidebar = null;
  const chat = createChat({
    onSessionChanged(session) {
      const hash = session ? `#session=${session.id}` : "";
      if (location.hash !== hash) history.replaceState(null, "", `/${hash}`);
      document.title = session ? `${session.title} · Agent Stack` : "Agent Stack";
      sidebar?.highlight(session?.id ?? null);
    },
    onSessionsChanged: () => sidebar?.load(),
  });
  sidebar = createSidebar({
    onOpen: (id, messageId = null) => {
      closeSidebar();
      chat.open(id, messageId);
    },
    onNew: () => chat.reset(),
    currentId: chat.currentId,
  });
  $("new-chat").addEventListener("click", () => {
    closeSidebar();
    chat.reset();
  });
  $("sign-out").addEventListener("click", () => {
    forgetToken();
    location.replace("/");
  });

  sidebar.load();
  const opened = sessionFromHash();
  if (opened !== null) chat.open(opened);
  else chat.reset();
}

async function boot() {
  let config;
  try {
    const response = await fetch("/config.json");
    config = await response.json();
  } catch (error) {
    report(error, boot);
    return;
  }
  onSignedOut(() => {
    forgetToken();
    showSignIn(config, "Your sign-in has expired. Please sign in again.");
  });
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      startApp(await devSignIn($("signin-name").value));
    } catch (error) {
      $("signin-error").textContent = error.message;
    }
  });
  $("signin-oidc-button").addEventListener("click", () =>
    startOidcSignIn(config.oidc).catch((error) => { $("signin-error").textContent = error.message; }),
  );

  let saved = savedToken();
  if (config.oidc) {
    try {
      saved = (await finishOidcSignIn(config.oidc)) || saved;
    } catch (error) {
      showSignIn(config, error.message);
      return;
    }
  }
  if (saved) startApp(saved);
  else showSignIn(config);
}

boot();
