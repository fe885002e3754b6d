// Small DOM helpers and the notice bar (errors in words, with a Retry button where it helps).

import { explain } from "./api.js";

// el("button", {class: "x", onclick: f, "aria-label": "..."}, "text", child, ...)
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

// How each role is named on the page.
export const ROLE_NAMES = { user: "You", assistant: "Assistant", tool: "Tool", system: "System" };

const bar = () => document.getElementById("notice");

export function notify(text, { retry = null, tone = "error" } = {}) {
  const node = bar();
  node.replaceChildren(el("span", {}, text));
  node.dataset.tone = tone;
  if (retry) {
    node.append(
      el("button", { type: "button", onclick: () => { clearNotice(); retry(); } }, "Retry"),
    );
  }
  node.append(el("button", { type: "button", "aria-label": "Dismiss", onclick: clearNotice }, "×"));
  node.hidden = false;
}

export function clearNotice() {
  bar().hidden = true;
  bar().replaceChildren();
}

// Shows what went wrong; `retry` is offered only when trying again may help.
export function report(error, retry = null) {
  const { text, retry: sensible } = explain(error);
  notify(text, { retry: sensible ? retry : null });
}
