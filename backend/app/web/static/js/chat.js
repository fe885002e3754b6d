// The conversation: the active branch, streamed replies (stop, resume, reconnect), edit,
// regenerate, "< 2 / 3 >" branch switching, feedback, and tool calls as collapsible blocks.

import { json, nextLink, send } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { followReply, offsetOf } from "./stream.js";
import { clearNotice, el, notify, report, ROLE_NAMES } from "./ui.js";


export function createChat({ onSessionChanged, onSessionsChanged }) {
  const list = document.getElementById("messages");
  const title = document.getElementById("chat-title");
  const prompt = document.getElementById("prompt");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const composer = document.getElementById("composer");

  let session = null;
  let thread = [];
  let streamingId = null;
  let busy = false;
  let editing = null;

  const byId = (id) => thread.find((message) => message.id === id);

  function setBusy(value) {
    busy = value;
    sendButton.hidden = value;
    stopButton.hidden = !value;
    stopButton.disabled = false;
    list.setAttribute("aria-busy", String(value));
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  // ---- rendering -------------------------------------------------------------------------

  function toolBlocks(message) {
    const blocks = [];
    for (const call of message.tool_calls || []) {
      let args = call.function.arguments;
      try {
        args = JSON.stringify(JSON.parse(args), null, 2);
      } catch {
        // shown as sent
      }
      blocks.push(
        el(
          "details",
          { class: "tool" },
          el("summary", {}, `Tool call: ${call.function.name}`),
          el("pre", {}, el("code", {}, args)),
        ),
      );
    }
    return blocks;
  }

  function body(message) {
    if (message.role === "tool") {
      return el(
        "details",
        { class: "tool tool-result" },
        el("summary", {}, `Tool result${message.tool_call_id ? ` (${message.tool_call_id})` : ""}`),
        el("pre", {}, el("code", {}, message.content)),
      );
    }
    if (!message.content && message.tool_calls?.length && message.status !== "streaming") return null;
    const node = el("div", { class: "body" });
    node.append(renderMarkdown(message.content || ""));
    if (message.status === "streaming") node.append(el("span", { class: "cursor", "aria-hidden": "true" }));
    return node;
  }

  function branchSwitch(message) {
    const siblings = message.sibling_ids || [message.id];
    if (siblings.length < 2) return null;
    const index = siblings.indexOf(message.id);
    return el(
      "span",
      { class: "branches" },
      el("button", {
        type: "button",
        class: "prev-branch",
        "aria-label": "Previous version",
        disabled: index <= 0 || busy,
        onclick: () => switchBranch(siblings[index - 1]),
      }, "‹"),
      el("span", { class: "branch-position" }, `${index + 1} / ${siblings.length}`),
      el("button", {
        type: "button",
        class: "next-branch",
        "aria-label": "Next version",
        disabled: index >= siblings.length - 1 || busy,
        onclick: () => switchBranch(siblings[index + 1]),
      }, "›"),
    );
  }

  function actions(message) {
    const bar = el("div", { class: "actions" }, branchSwitch(message));
    if (message.status === "streaming") return bar;
    if (message.role === "user") {
      bar.append(el("button", { type: "button", class: "edit", disabled: busy, onclick: () => startEdit(message) }, "Edit"));
    }
    if (message.role === "tool" && message === thread[thread.length - 1]) {
      // The client ran the tool and posted its result: the model answers it.
      bar.append(el("button", { type: "button", class: "continue", disabled: busy, onclick: () => runReply({ open: () => send("POST", `/api/sessions/${session.id}/replies`, { body: {} }) }) }, "Continue"));
    }
    if (message.role === "assistant") {
      bar.append(
        el("button", { type: "button", class: "regenerate", disabled: busy, onclick: () => regenerate(message) }, "Regenerate"),
      );
      const rating = message.feedback?.rating ?? null;
      for (const [value, label, glyph] of [["up", "Good reply", "▲"], ["down", "Bad reply", "▼"]]) {
        bar.append(
          el("button", {
            type: "button",
            class: `feedback feedback-${value}`,
            "aria-label": label,
            "aria-pressed": String(rating === value),
            title: label,
            onclick: () => rate(message, value),
          }, glyph),
        );
      }
    }
    return bar;
  }

  function statusNote(message) {
    if (message.status === "cancelled") return el("span", { class: "status" }, "stopped");
    if (message.status === "failed") return el("span", { class: "status failed" }, `failed${message.error ? `: ${message.error}` : ""}`);
    if (message.status === "streaming") return el("span", { class: "status" }, "writing…");
    return null;
  }

  function item(message) {
    if (editing === message.id) return editor(message);
    return el(
      "li",
      { class: `message role-${message.role}`, dataset: { id: message.id, status: message.status } },
      el("div", { class: "meta" }, el("span", { class: "role" }, ROLE_NAMES[message.role] || message.role), statusNote(message)),
      body(message),
      ...toolBlocks(message),
      actions(message),
    );
  }

  function render() {
    cancelAnimationFrame(frame);
    frame = null;
    stale.clear();
    const stick = nearBottom();
    title.textContent = session ? session.title : "New chat";
    list.replaceChildren(...thread.map(item));
    if (!thread.length) {
      list.append(el("li", { class: "empty" }, session ? "No messages yet." : "Start a conversation below."));
    }
    if (stick) list.scrollTop = list.scrollHeight;
  }

  // Re-renders messages in place (deltas arrived), at most once a frame. A full render()
  // drops what is pending: it drew the newest state already.
  let frame = null;
  const stale = new Set();
  function repaint(message) {
    stale.add(message.id);
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = null;
      const stick = nearBottom();
      for (const id of stale) {
        const node = list.querySelector(`li[data-id="${id}"]`);
        const current = byId(id);
        if (node && current) node.replaceWith(item(current));
      }
      stale.clear();
      if (stick) list.scrollTop = list.scrollHeight;
    });
  }

  // ---- loading ---------------------------------------------------------------------------

  async function loadThread() {
    thread = await json("GET", `/api/sessions/${session.id}/thread?limit=1000`);
    render();
  }

  async function open(sessionId, focusId = null) {
    try {
      clearNotice();
      editing = null;
      session = await json("GET", `/api/sessions/${sessionId}`);
      onSessionChanged(session);
      if (focusId !== null && !(await onBranch(focusId))) await switchBranch(focusId, false);
      await loadThread();
      if (focusId !== null) focus(focusId);
      const running = thread.find((message) => message.status === "streaming");
      if (running && !busy) resume(running);
    } catch (error) {
      report(error, () => open(sessionId, focusId));
    }
  }

  async function onBranch(id) {
    const branch = await json("GET", `/api/sessions/${session.id}/thread?limit=1000`);
    return branch.some((message) => message.id === id);
  }

  function focus(id) {
    const node = list.querySelector(`li[data-id="${id}"]`);
    if (!node) return;
    node.classList.add("found");
    node.scrollIntoView({ block: "center" });
    node.tabIndex = -1;
    node.focus({ preventScroll: true });
  }

  function reset() {
    session = null;
    thread = [];
    editing = null;
    onSessionChanged(null);
    render();
    prompt.focus();
  }

  // ---- replies -----------------------------------------------------------------------------

  // Runs one reply stream. `cutAt`: the index the new messages replace from (edit, regenerate).
  // Answers whether the reply began (a refusal, say a 409, leaves the page as it was).
  async function runReply(options, cutAt = null, retry = () => runReply(options, cutAt)) {
    setBusy(true);
    let began = false;
    let cut = cutAt === null;
    const place = (message) => {
      if (!cut) {
        thread = thread.slice(0, cutAt);
        cut = true;
      }
      thread.push(message);
    };
    let current = null;
    try {
      await followReply({
        ...options,
        onEvent(name, data) {
          began = true;
          clearNotice();
          if (name === "user") {
            place({ ...data, sibling_ids: [data.id] });
            render();
          } else if (name === "message") {
            current = { ...data, sibling_ids: [data.id] };
            place(current);
            streamingId = data.id;
            render();
          } else if (name === "delta") {
            current = current || byId(streamingId);
            current.content += data.text;
            repaint(current);
          } else if (name === "tool_call") {
            current = current || byId(streamingId);
            current.tool_calls = [...(current.tool_calls || []), data];
            repaint(current);
          } else if (name === "done" || name === "error") {
            const final = name === "done" ? data : data.message;
            current = current || byId(streamingId);
            if (current && final) Object.assign(current, final);
            if (name === "error") notify(`The reply failed: ${data.detail}`);
            repaint(current);
          }
        },
        onReconnecting(ms) {
          notify(`Connection lost. Reconnecting in ${Math.round(ms / 100) / 10} s…`, { tone: "info" });
        },
      });
    } catch (error) {
      report(error, retry);
    } finally {
      streamingId = null;
      setBusy(false);
      if (session) {
        try {
          await loadThread(); // sibling ids and final states, as stored
        } catch (error) {
          report(error, loadThread);
        }
        onSessionsChanged();
      }
    }
    return began;
  }

  function resume(message) {
    streamingId = message.id;
    return runReply({ messageId: message.id, lastEventId: offsetOf(message.content) });
  }

  async function ensureSession(text) {
    if (session) return true;
    try {
      const firstLine = text.trim().split("\n")[0];
      const name = firstLine.length > 60 ? `${firstLine.slice(0, 57)}…` : firstLine;
      session = await json("POST", "/api/sessions/", { body: { title: name || "New chat" } });
      onSessionChanged(session);
      onSessionsChanged();
      return true;
    } catch (error) {
      report(error, () => submit(text));
      return false;
    }
  }

  async function submit(text) {
    if (busy || !text.trim()) return;
    if (!(await ensureSession(text))) return;
    prompt.value = "";
    const sessionId = session.id;
    const began = await runReply(
      { open: () => send("POST", `/api/sessions/${sessionId}/replies`, { body: { content: text } }) },
      null,
      () => submit(text),
    );
    if (!began && !prompt.value) prompt.value = text; // refused: nothing typed is lost
  }

  async function stop() {
    if (streamingId === null) return;
    stopButton.disabled = true;
    try {
      await json("POST", `/api/messages/${streamingId}/cancel`);
    } catch (error) {
      if (error.status !== 409) report(error, stop); // 409: it had already finished
    }
  }

  function regenerate(message) {
    if (busy) return;
    runReply(
      { open: () => send("POST", `/api/messages/${message.id}/regenerate`) },
      thread.indexOf(message),
    );
  }

  function startEdit(message) {
    if (busy) return;
    editing = message.id;
    render();
    list.querySelector(".editor textarea")?.focus();
  }

  function editor(message) {
    const area = el("textarea", { "aria-label": "Edit message", rows: "3" });
    area.value = message.content;
    const save = () => {
      const text = area.value;
      if (!text.trim()) return;
      editing = null;
      runReply(
        {
          open: () =>
            send("POST", `/api/sessions/${session.id}/replies`, {
              body: { content: text, parent_id: message.parent_id },
            }),
        },
        thread.indexOf(message),
      );
    };
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        save();
      }
      if (event.key === "Escape") {
        editing = null;
        render();
      }
    });
    return el(
      "li",
      { class: "message role-user editor", dataset: { id: message.id } },
      area,
      el(
        "div",
        { class: "actions" },
        el("button", { type: "button", class: "save-edit", onclick: save }, "Save and send"),
        el("button", { type: "button", onclick: () => { editing = null; render(); } }, "Cancel"),
      ),
    );
  }

  // Every message of the session (all branches), following the Link cursor.
  async function everyMessage() {
    const all = [];
    let url = `/api/messages/?session_id=${session.id}&limit=100`;
    while (url) {
      const response = await send("GET", url);
      all.push(...(await response.json()));
      url = nextLink(response);
    }
    return all;
  }

  // Shows the branch through `id`: down to its newest leaf, which becomes current.
  async function switchBranch(id, reload = true) {
    try {
      const children = new Map();
      for (const message of await everyMessage()) {
        const siblings = children.get(message.parent_id) || [];
        siblings.push(message.id);
        children.set(message.parent_id, siblings);
      }
      let leaf = id;
      while (children.has(leaf)) leaf = Math.max(...children.get(leaf));
      session = await json("PATCH", `/api/sessions/${session.id}`, { body: { current_message_id: leaf } });
      // A branch switch is activity: the session moves to the top of the list.
      onSessionChanged(session);
      onSessionsChanged();
      if (reload) await loadThread();
    } catch (error) {
      report(error, () => switchBranch(id, reload));
    }
  }

  async function rate(message, value) {
    const again = message.feedback?.rating === value;
    try {
      if (again) {
        await send("DELETE", `/api/messages/${message.id}/feedback`);
        message.feedback = null;
      } else {
        await send("PUT", `/api/messages/${message.id}/feedback`, { body: { rating: value } });
        message.feedback = { rating: value };
      }
      repaint(message);
    } catch (error) {
      report(error, () => rate(message, value));
    }
  }

  // ---- the composer ------------------------------------------------------------------------

  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit(prompt.value);
    }
  });
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(prompt.value);
  });
  stopButton.addEventListener("click", stop);

  return { open, reset, currentId: () => session?.id ?? null, rendered: () => thread };
}
