// Audit entries as sentences: "Ana Silva (Banca Italia) ran a query on bank_alerts costing
// rho 0.1", with the entry's fields in a collapsible list (ids, amounts exact on hover),
// never raw JSON. One sentence per action of hub/governance/audit.py's Action
// (tests/web/test_names.py fails when an action has none); the command line's sentences are
// connectors/common/auditsentences.py (the same sentences).

import { amount, costOf, sizeText } from "./amounts.js";
import { h } from "./dom.js";

const LIMITS = { global_total: "global", per_member: "per member", per_query: "per query",
  per_month: "per month" };

function roles(values) {
  const items = (values || []).map(String);
  return `${items.length === 1 ? "the role" : "the roles"} ${items.join(", ") || "none"}`;
}

function errors(n) {
  return n ? ` (${rows(n)} error${n === 1 ? "" : "s"})` : "";
}

function rows(n) {
  return n === undefined || n === null ? "" : Number(n).toLocaleString("en");
}

function audience(value, x) {
  if (value === "all" || value === undefined || value === null) return "every member";
  const orgs = (Array.isArray(value) ? value : [value]).map((id) => x.names.org(id));
  return orgs.flatMap((el, i) => (i ? [", ", el] : [el]));
}

function budgetChanges(d) {
  // "per member rho 1 -> rho 2; per query ..." from the limits before and after
  const before = d.before || {};
  const after = d.after || {};
  const changed = Object.keys(LIMITS).filter((k) => before[k] !== after[k]);
  if (!changed.length) return "";
  return [": ", changed.flatMap((k, i) => [i ? "; " : "", `${LIMITS[k]} `,
    before[k] ? amount(before[k], after.measure || before.measure) : "none", " → ",
    after[k] ? amount(after[k], after.measure || before.measure) : "none"])];
}

function because(text) {
  return text ? `: ${text}` : "";
}

function sourceText(d) {
  const where = ["kind", "location"].filter((k) => d[k]).map((k) => d[k]).join(": ");
  return `the open source ${d.name || "?"}${where ? ` (${where})` : ""}`;
}

function sourceChanges(changed) {
  const entries = Object.entries(changed || {});
  return entries.length ? ": " + entries.map(([k, v]) => (Array.isArray(v) && v.length === 2
    ? `${k} ${v[0]} -> ${v[1]}` : k)).join(", ") : "";
}

function tagCount(n) {
  return n === undefined || n === null ? "" : ` (${n} tag${n === 1 ? "" : "s"})`;
}

function tagChanges(d) {
  // "(2 kept, 1 added, 1 removed)" from a correction's counts
  const parts = [["kept", d.kept], ["added", d.added], ["removed", d.removed]]
    .filter(([, n]) => n !== undefined && n !== null).map(([w, n]) => `${n} ${w}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

function policy(e) {
  return ["version ", String(e.details.version ?? "?"), " of the ", e.dataset || "?",
    " policy"];
}

// action -> the parts of its sentence (strings and elements), from the entry and helpers:
// x.who (the actor, with its organisation), x.admin (the actor alone: the hub or its
// administrator), x.org (the entry's organisation), x.person (the person it is about),
// x.dataset, x.cost.
export const SENTENCES = {
  "auth.token_issued": (e, x) => [x.who, " received an access token",
    e.details.client_id ? ` (signed in through ${e.details.client_id})` : ""],
  "auth.token_refused": (e, x) => ["the hub refused a token to ",
    e.actor ? x.who : "an unknown client", because(e.details.error)],
  "auth.bearer_refused": (e) => ["the hub refused a request's access token",
    because(e.details.reason)],
  "auth.signed_in": (e, x) => [x.who, " signed in",
    e.details.method ? ` (${e.details.method})` : ""],
  "auth.sign_in_failed": (e, x) => [e.actor ? [x.who, " failed to sign in"]
    : "a sign-in by someone the hub does not know failed",
  e.details.method ? ` (${e.details.method})` : "", because(e.details.reason)],
  "auth.refresh_reused": (e, x) => ["a used refresh token of ", x.person,
    " came back: the sessions it began were ended"],
  "member.registered": (e, x) => [x.admin, " registered ", x.org, " as a member",
    e.details.kind ? ` (${String(e.details.kind).replace(/_/g, " ")})` : ""],
  "member.limits_set": (e, x) => [x.admin, " set the extract limits of ", x.org],
  "person.added": (e, x) => [x.admin, " added ", x.person, " with ", roles(e.details.roles)],
  "person.linked": (e, x) => [x.person, " was linked to their identity at ",
    e.details.issuer || "an external provider"],
  "person.password_set": (e, x) => [x.admin, " set the password of ", x.person],
  "person.roles_set": (e, x) => [x.admin, " gave ", x.person, " ", roles(e.details.roles)],
  "person.disabled": (e, x) => [x.admin, " disabled ", x.person],
  "client.added": (e, x) => [x.admin, " added a client to ", x.org, " with ",
    roles(e.details.roles)],
  "client.revoked": (e, x) => [x.admin, " revoked a client of ", x.org],
  "upload.started": (e, x) => [x.who, " started an upload to ", x.dataset,
    e.details.size ? ` (${sizeText(e.details.size)})` : ""],
  "upload.committed": (e, x) => (e.details.duplicate
    ? [x.who, " sent ", x.dataset, " an extract the hub already had"]
    : [x.who, " added an extract of ", rows(e.details.rows), " rows to ", x.dataset]),
  "upload.rejected": (e, x) => ["the hub rejected an upload by ", x.who, " to ", x.dataset,
    e.details.code ? `: ${e.details.code}` : "", errors(e.details.total_errors)],
  "upload.aborted": (e, x) => [x.who, " abandoned an upload to ", x.dataset],
  "extract.withdrawn": (e, x) => [x.who, " withdrew an extract of ", rows(e.details.rows),
    " rows from ", x.dataset],
  "query.charged": (e, x) => [x.who, " ran a query on ", x.dataset, " costing ", x.cost],
  "query.released": (e, x) => ["the answer to a query by ", x.who, " on ", x.dataset,
    " was released"],
  "query.failed": (e, x) => ["a query by ", x.who, " on ", x.dataset, " failed; its cost ",
    x.cost, " stays spent", because(e.details.reason)],
  "query.reused": (e, x) => [x.who, " asked a query on ", x.dataset,
    " again: the stored answer, free"],
  "policy.loaded": (e, x) => [x.admin, " loaded ", policy(e),
    e.details.file ? ` from ${e.details.file}` : ""],
  "policy.refused": (e, x) => [x.admin, " refused the policy file ",
    e.details.file || e.object_id || "?", errors(e.details.errors)],
  "policy.proposed": (e, x) => [x.who, " proposed ", policy(e)],
  "policy.approved": (e, x) => [x.who, " approved ", policy(e),
    e.details.quorum_reached ? " (quorum reached)" : ""],
  "policy.rejected": (e, x) => [x.who, " rejected ", policy(e), because(e.details.reason)],
  "policy.withdrawn": (e, x) => [x.who, " withdrew ", policy(e)],
  "policy.superseded": (e) => [policy(e), " was superseded",
    e.details.by_version ? ` by version ${e.details.by_version}` : ""],
  "policy.activated": (e) => [policy(e), " became active"],
  "budget.changed": (e, x) => ["the budget of ", x.dataset, " changed with version ",
    String(e.details.version ?? "?"), budgetChanges(e.details)],
  "release.published": (e, x) => [x.who, " published a release of ", x.dataset, " to ",
    audience(e.details.audience, x)],
  "release.updated": (e, x) => [x.who, " updated a release of ", x.dataset, ", now to ",
    audience(e.details.audience, x)],
  "release.withdrawn": (e, x) => [x.who, " withdrew a release of ", x.dataset],
  "incident.accepted": (e, x) => [x.who, " accepted the suggested tags of incident ",
    e.object_id || "?", tagCount(e.details.coded)],
  "incident.corrected": (e, x) => [x.who, " corrected the tags of incident ", e.object_id || "?",
    tagChanges(e.details)],
  "incident.rejected": (e, x) => [x.who, " rejected incident ", e.object_id || "?",
    " as irrelevant", because(e.details.reason)],
  "incident.merged": (e, x) => [x.who, " merged incident ", e.object_id || "?", " into ",
    e.details.into || "?"],
  "reports.purged": (e, x) => [x.admin, " deleted the texts of ", rows(e.details.texts),
    " crowd reports reviewed more than ", String(e.details.retention_days ?? "?"),
    " days ago"],
  "source.added": (e, x) => [x.admin, " added ", sourceText(e.details)],
  "source.changed": (e, x) => [x.admin, " changed ", sourceText({ name: e.details.name }),
    sourceChanges(e.details.changed)],
  "source.removed": (e, x) => [x.admin, " removed ", sourceText(e.details)],
  "request.refused": (e, x) => ["the hub refused ", x.who, ": ",
    `${e.details.method || ""} ${e.details.route || ""}`.trim(),
    ` (${[e.details.status, e.details.code, e.details.rule].filter(Boolean).join(", ")})`,
    e.details.count > 1 ? `, ${e.details.count} times` : ""],
};

function capitalised(el) {
  // The sentence's first letter in capitals (in the first text it holds).
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.textContent.trim()) {
      node.textContent = node.textContent.replace(/^(\s*)(\S)/,
        (_, space, first) => space + first.toUpperCase());
      break;
    }
  }
  return el;
}

export function sentence(entry, names) {
  // One entry in words, as an element (names with their ids on hover).
  const e = { ...entry, details: entry.details || {} };
  const x = {
    names,
    who: names.who(e.actor, e.org),
    admin: names.who(e.actor || "hub:", null),
    org: e.org ? names.org(e.org) : "an organisation",
    person: names.who(e.object_type === "person" ? e.object_id : e.actor, e.org),
    dataset: e.dataset || "a dataset",
    cost: costOf(e.details.cost),
  };
  const parts = (SENTENCES[e.action] || ((_, y) => [y.who, `: ${e.action}`,
    e.dataset ? ` on ${e.dataset}` : ""]))(e, x);
  return capitalised(h("span", { class: "sentence", "data-action": e.action }, parts, "."));
}

function label(key) {
  return key.replace(/_/g, " ");
}

function value(v, names) {
  // A field's value, readable: names for ids (the id on hover), decimals for exact amounts
  // (the fraction on hover), lists and nested fields as lists, never JSON.
  if (v === null || v === undefined) return "none";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") return String(v);
  if (typeof v === "string") {
    if (/^org_[0-9a-f]+$/.test(v)) return names.org(v);
    if (/^usr_[0-9a-f]+$/.test(v)) return names.who(v, null);
    if (/^-?\d+\/\d+$/.test(v)) return amount(v);
    return v;
  }
  if (Array.isArray(v)) {
    if (v.every((i) => i === null || typeof i !== "object")) {
      return v.length ? v.map((i) => value(i, names)).flatMap((el, i) => (i ? [", ", el]
        : [el])) : "none";
    }
    return h("ol", {}, v.map((i) => h("li", {}, value(i, names))));
  }
  if (typeof v.amount === "string" && typeof v.measure === "string") return costOf(v);
  return fields(Object.entries(v), names);
}

function fields(pairs, names) {
  return h("dl", { class: "fields" }, pairs.map(([k, v]) => [h("dt", {}, label(k)),
    h("dd", {}, value(v, names))]));
}

export function details(entry, names) {
  // The entry's fields in a collapsible list: who (with ids), what it is about, its
  // details, and its place in the chain.
  const who = [entry.actor ? h("span", {}, names.who(entry.actor, entry.org), " (",
    h("code", {}, entry.actor), ")") : "the hub",
  entry.org ? [" of ", names.org(entry.org), " (", h("code", {}, entry.org), ")"] : null];
  const about = entry.object_type ? [entry.object_type.replace(/_/g, " "), " ",
    entry.object_id ? h("code", {}, entry.object_id) : null] : null;
  return h("details", { class: "entry-details" }, h("summary", {}, "Details"),
    h("dl", { class: "fields" },
      h("dt", {}, "action"), h("dd", {}, h("code", {}, entry.action)),
      h("dt", {}, "by"), h("dd", {}, who),
      about ? [h("dt", {}, "about"), h("dd", {}, about)] : null,
      entry.dataset ? [h("dt", {}, "dataset"), h("dd", {}, entry.dataset)] : null),
    Object.keys(entry.details || {}).length
      ? fields(Object.entries(entry.details), names) : null,
    entry.seq !== undefined ? h("p", { class: "muted" }, `entry ${entry.seq}`,
      entry.hash ? [", hash ", h("code", {}, entry.hash.slice(0, 16)), "…"] : null) : null);
}

