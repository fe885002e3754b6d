// The sessions sidebar: pinned first, archived behind a toggle, "Load more" through the Link
// cursor, search with highlighted snippets, and each session's actions.

import { json, nextLink, send } from "./api.js";
import { el, report, ROLE_NAMES } from "./ui.js";

const PAGE = 30;

function hitMeta(hit) {
  const who = hit.kind === "title" ? "Title" : ROLE_NAMES[hit.role] ?? hit.role;
  const when = hit.created_at ? new Date(hit.created_at).toLocaleString() : "";
  return [who, when].filter(Boolean).join(" · ");
}

export function createSidebar({ onOpen, onNew, currentId }) {
  const list = document.getElementById("sessions");
  const more = document.getElementById("load-more");
  const archivedToggle = document.getElementById("show-archived");
  const search = document.getElementById("search");
  const results = document.getElementById("search-results");
  const nav = document.getElementById("sessions-nav");
  let next = null;

  async function load(url = null) {
    try {
      const path = url || `/api/sessions/?limit=${PAGE}${archivedToggle.checked ? "&archived=true" : ""}`;
      const response = await send("GET", path);
      const sessions = await response.json();
      if (!url) list.replaceChildren();
      for (const session of sessions) list.append(item(session));
      next = nextLink(response);
      more.hidden = !next;
      if (!url && !sessions.length) {
        list.append(el("li", { class: "empty" }, archivedToggle.checked ? "No archived chats." : "No chats yet."));
      }
    } catch (error) {
      report(error, () => load(url));
    }
  }

  async function update(session, change) {
    try {
      await json("PATCH", `/api/sessions/${session.id}`, { body: change });
      await load();
    } catch (error) {
      report(error, () => update(session, change));
    }
  }

  function rename(session, row) {
    const input = el("input", {
      class: "rename",
      value: session.title,
      maxlength: "500",
      "aria-label": `New title for ${session.title}`,
    });
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title && title !== session.title) await update(session, { title });
      else await load();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") finish(true);
      if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
    row.replaceChildren(input);
    input.focus();
    input.select();
  }

  async function remove(session) {
    if (!confirm(`Delete "${session.title}" and all its messages?`)) return;
    try {
      await send("DELETE", `/api/sessions/${session.id}`);
      if (currentId() === session.id) onNew();
      await load();
    } catch (error) {
      report(error, () => remove(session));
    }
  }

  function item(session) {
    const row = el("li", { class: "session", dataset: { id: session.id } });
    const menu = el(
      "details",
      { class: "menu" },
      el("summary", { "aria-label": `Actions for ${session.title}`, title: "Actions" }, "⋯"),
      el(
        "div",
        { class: "menu-items", onclick: (event) => { if (event.target.closest("button")) menu.open = false; } },
        el("button", { type: "button", onclick: () => rename(session, row) }, "Rename"),
        el("button", { type: "button", onclick: () => update(session, { pinned: !session.pinned }) },
          session.pinned ? "Unpin" : "Pin"),
        el("button", { type: "button", onclick: () => update(session, { archived: !session.archived }) },
          session.archived ? "Unarchive" : "Archive"),
        el("button", { type: "button", class: "danger", onclick: () => remove(session) }, "Delete"),
      ),
    );
    row.append(
      el(
        "button",
        {
          type: "button",
          class: "open",
          "aria-current": currentId() === session.id ? "page" : null,
          onclick: () => onOpen(session.id),
        },
        session.pinned ? el("span", { class: "pin", "aria-label": "Pinned" }, "★ ") : null,
        session.title,
      ),
      menu,
    );
    return row;
  }

  let pending = 0;
  async function runSearch() {
    const q = search.value.trim();
    const ticket = ++pending;
    if (!q) {
      results.hidden = true;
      nav.hidden = false;
      return;
    }
    try {
      const hits = await json("GET", `/api/search?q=${encodeURIComponent(q)}&limit=20`);
      if (ticket !== pending) return; // a newer query is on its way
      results.replaceChildren(
        ...(hits.length
          ? hits.map((hit) =>
              el(
                "li",
                {},
                el(
                  "button",
                  {
                    type: "button",
                    class: "hit",
                    onclick: () => onOpen(hit.session_id, hit.message_id),
                  },
                  el("span", { class: "hit-title" }, hit.session_title),
                  el("span", { class: "hit-meta" }, hitMeta(hit)),
                  el(
                    "span",
                    { class: "snippet" },
                    // Parts are text: the matches are marked by the API, never by HTML.
                    ...hit.snippet.map((part) => (part.match ? el("mark", {}, part.text) : part.text)),
                  ),
                ),
              ),
            )
          : [el("li", { class: "empty" }, "No messages match.")]),
      );
      results.hidden = false;
      nav.hidden = true;
    } catch (error) {
      if (ticket === pending) report(error, runSearch);
    }
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(runSearch, 250);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      search.value = "";
      runSearch();
    }
  });
  more.addEventListener("click", () => next && load(next));
  archivedToggle.addEventListener("change", () => load());

  return { load, highlight: (id) => {
    for (const button of list.querySelectorAll(".open")) {
      const active = Number(button.parentElement.dataset.id) === id;
      if (active) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
  } };
}
