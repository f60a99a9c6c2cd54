// DOM helpers shared by every page: an element builder and the refusal box.

import { amount } from "./amounts.js";

const AMOUNTS = new Set(["requested", "remaining"]);

export function h(tag, attrs = {}, ...children) {
  // A small element builder: text children are escaped by the DOM, never parsed as HTML.
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function problemBox(error) {
  // A refusal, with the rule or field that caused it (never a stack trace).
  const body = (error && error.body) || {};
  const facts = ["rule", "field", "requested", "remaining"]
    .filter((k) => body[k] !== undefined && body[k] !== null)
    .map((k) => [`${k}: `, AMOUNTS.has(k) ? amount(body[k], body.measure) : String(body[k])]);
  const lines = (body.errors || []).map((e) =>
    h("li", {}, `${e.line ? `line ${e.line}: ` : ""}${e.field ? `${e.field}: ` : ""}${e.reason}`));
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, error.message || "The hub refused."),
    facts.length ? h("div", {}, facts.flatMap((f, i) => (i ? [" · ", f] : [f]))) : null,
    lines.length ? h("ul", {}, lines) : null);
}

export function fill(parent, ...children) {
  // Replace parent's children, skipping null and false and flattening arrays (the DOM's own
  // replaceChildren would print "null").
  parent.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined
    && c !== false));
  return parent;
}
