// The reviewers' queue (role reviewer, docs/osint.md#review): what is waiting and for how
// long, claiming the next incident; the incident held, each item's text with the evidence of
// every suggested tag highlighted, a form to accept or correct the tags (add, remove, change a
// code or a place's role), to reject it with a reason or to merge it into an incident that
// may be the same.
//
// Texts come from articles and from the public: they are inserted as text nodes only (dom.js's
// h), never as HTML, so that a report holding a script shows it as text.
//
// API: GET /v1/review/queue, POST /v1/review/claim, GET /v1/review/incidents/{id},
// POST /v1/review/incidents/{id}/decision.

import { api } from "./api.js";
import { fill, h, problemBox } from "./dom.js";

export const FIELD_NAMES = {
  exploitation_type: "Exploitation type", location: "Place", recruitment: "Recruitment",
  transport: "Transport", control: "Means of control", age_group: "Age group",
  age_band: "Age band (CTDC)", gender: "Gender", incident_period: "Month of the incident",
};
const ROLES = ["origin", "transit", "destination"];
const COUNTRIES = (() => {
  try { return new Intl.DisplayNames(["en"], { type: "region" }); } catch { return null; }
})();

export function codeName(field, code) {
  // A code in words where the browser knows it (countries), else the code itself.
  if (field === "location" && COUNTRIES) {
    try {
      const name = COUNTRIES.of(code);
      if (name && name !== code) return `${name} (${code})`;
    } catch { /* not a region code */ }
  }
  return code;
}

export function tagText(tag) {
  const base = `${FIELD_NAMES[tag.field] || tag.field}: ${codeName(tag.field, tag.code)}`;
  return tag.role ? `${base}, ${tag.role}` : base;
}

export function duration(seconds) {
  // 3 d 4 h, 2 h 5 min, 12 min, 40 s
  if (seconds === null || seconds === undefined) return "-";
  const d = Math.floor(seconds / 86400);
  const hrs = Math.floor((seconds % 86400) / 3600);
  const min = Math.floor((seconds % 3600) / 60);
  if (d) return `${d} d ${hrs} h`;
  if (hrs) return `${hrs} h ${min} min`;
  if (min) return `${min} min`;
  return `${seconds} s`;
}

function incidentLink(id) {
  return `#/review?incident=${encodeURIComponent(id)}`;
}

function wanted() {
  return new URLSearchParams(location.hash.split("?")[1] || "").get("incident");
}

export async function show({ render }) {
  const incident = wanted();
  if (incident) await showIncident(render, incident);
  else await showQueue(render);
}

// -- the queue ------------------------------------------------------------------------------
async function claim(box, body) {
  try {
    const claimed = await api("/v1/review/claim", { method: "POST", json: body || {} });
    location.hash = incidentLink(claimed.incident);
  } catch (error) {
    box.append(problemBox(error));
  }
}

async function showQueue(render) {
  const box = h("div", {});
  const q = await api("/v1/review/queue?limit=100");
  const c = q.counts;
  const summary = h("section", { class: "panel", "aria-labelledby": "q-h" },
    h("h2", { id: "q-h" }, "Waiting for review"),
    h("p", { "data-testid": "waiting" }, q.waiting
      ? `${q.waiting} incident${q.waiting === 1 ? "" : "s"} waiting; the oldest for `
        + `${duration(q.oldest_waiting_seconds)}.`
      : "Nothing is waiting: every incident has been reviewed."),
    h("dl", { class: "fields", "data-testid": "counts" },
      ["queued", "claimed", "accepted", "rejected", "merged"].map((s) => [h("dt", {}, s),
        h("dd", { "data-state": s }, String(c[s] || 0))])),
    h("p", { class: "muted" }, `A claim lasts ${q.claim_minutes} minutes; an incident left `
      + "undecided then goes back to the queue."),
    h("button", { type: "button", disabled: !q.waiting,
      onclick: () => claim(box) }, "Claim the next incident"),
    box);
  const rows = q.incidents.map((i) => h("tr", { "data-incident": i.id },
    h("th", { scope: "row" }, h("code", {}, i.id)),
    h("td", {}, duration(i.waiting_seconds)),
    h("td", {}, i.titles.length ? h("ul", { class: "plain" }, i.titles.map((t) => h("li", {}, t)))
      : "", `${i.items} ${i.items === 1 ? "source" : "sources"}`
      + ` (${i.kinds.map((k) => (k === "report" ? "crowd report" : k)).join(", ")})`),
    h("td", {}, i.suggested.map(tagText).join("; ") || "no tag suggested"),
    h("td", {}, i.possibly_same.length ? i.possibly_same.map((s) => h("div", {},
      h("code", {}, s.id), ` (${s.state})`)) : "none"),
    h("td", {}, i.state === "claimed" && !i.mine
      ? `held until ${i.claim_expires_at}`
      : h("button", { type: "button", class: "secondary",
        onclick: () => claim(box, { incident: i.id }) },
      i.mine ? `Continue ${i.id}` : `Claim ${i.id}`))));
  const list = h("section", { "aria-labelledby": "l-h" }, h("h2", { id: "l-h" },
    "Oldest first"), q.incidents.length ? h("div", { class: "scroll" }, h("table",
    { id: "queue" }, h("thead", {}, h("tr", {}, ["Incident", "Waiting", "Sources",
    "Suggested", "Possibly the same", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows))) : h("p", { class: "empty" }, "The queue is empty."));
  render("Review queue", summary, list);
}

// -- one incident -----------------------------------------------------------------------------
export function highlighted(text, spans) {
  // ``text`` as text nodes, each evidence span in a <mark> naming its tags (spans may
  // overlap: the text is cut at every span edge). Never parsed as HTML.
  const cuts = new Set([0, text.length]);
  for (const s of spans) {
    if (s.start >= 0 && s.end <= text.length && s.start < s.end) {
      cuts.add(s.start);
      cuts.add(s.end);
    }
  }
  const edges = [...cuts].sort((a, b) => a - b);
  const out = [];
  for (let k = 0; k + 1 < edges.length; k += 1) {
    const [a, b] = [edges[k], edges[k + 1]];
    const piece = text.slice(a, b);
    const over = spans.filter((s) => s.start <= a && s.end >= b && s.start < s.end);
    if (!over.length) { out.push(piece); continue; }
    const names = [...new Set(over.map((s) => tagText(s.tag)))];
    out.push(h("mark", { title: names.join("; "), "data-tags": names.join("; "),
      "data-fields": [...new Set(over.map((s) => s.tag.field))].join(" ") }, piece));
  }
  return out;
}

function spansOf(suggested, item, part) {
  return suggested.flatMap((tag) => tag.evidence
    .filter((e) => e.item === item.id && e.part === part)
    .map((e) => ({ start: e.start, end: e.end, tag })));
}

function itemView(item, suggested, n) {
  const isReport = item.kind === "report";
  const heading = isReport ? `Crowd report ${n}`
    : h("span", {}, highlighted(item.title || `Article ${n}`, spansOf(suggested, item, "title")));
  const facts = [
    item.source ? ["Source", item.source.name || item.source.id] : null,
    item.url ? ["Address", h("a", { href: item.url, rel: "noopener noreferrer nofollow",
      target: "_blank" }, item.url)] : null,
    ["Language", item.language || "unknown"],
    item.published_at ? ["Published", item.published_at] : null,
    ["Collected", item.collected_at],
    item.relevance ? ["Trafficking incident?", `${item.relevance.relevant ? "yes" : "no"} `
      + `(confidence ${Math.round(100 * item.relevance.confidence)}%)`] : null,
  ].filter(Boolean);
  return h("article", { class: "panel item", "data-item": item.id,
    "aria-labelledby": `it-${item.id}` },
  h("h3", { id: `it-${item.id}` }, heading),
  h("dl", { class: "fields" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
  item.text !== null && item.text !== undefined
    ? h("div", { class: "item-text", "data-testid": "item-text" },
      highlighted(item.text, spansOf(suggested, item, "text")))
    : h("p", { class: "empty" }, item.text_unavailable || "No text."));
}

function codeControl(field, codes, value, label) {
  // A select of the field's codes, or a month input for the incident's month.
  if (!codes) {
    return h("input", { type: "month", value: value || "", "aria-label": label,
      required: true });
  }
  return h("select", { "aria-label": label },
    codes.map((c) => h("option", { value: c, selected: c === value }, codeName(field, c))));
}

function showDecided(render, decided) {
  const words = { accepted: "accepted", rejected: "rejected as irrelevant",
    merged: `merged into ${decided.merged_into}` };
  render("Review queue", h("div", { class: "panel", role: "status", "data-testid": "decided" },
    h("p", { class: "ok" }, `Incident ${decided.id} ${words[decided.state]}.`),
    decided.coded ? h("ul", {}, decided.coded.map((t) => h("li", {}, tagText(t)))) : null,
    h("button", { type: "button", onclick: async () => {
      try {
        const claimed = await api("/v1/review/claim", { method: "POST", json: {} });
        location.hash = incidentLink(claimed.incident);
      } catch (error) {
        location.hash = "#/review";
      }
    } }, "Claim the next incident"), " ",
    h("a", { href: "#/review" }, "Back to the queue")));
}

async function showIncident(render, id) {
  let incident;
  try {
    incident = await api(`/v1/review/incidents/${encodeURIComponent(id)}`);
  } catch (error) {
    render("Review queue", problemBox(error), h("p", {}, h("a", { href: "#/review" },
      "Back to the queue")));
    return;
  }
  const problems = h("div", { "aria-live": "assertive" });
  const decide = async (body) => {
    fill(problems);
    try {
      showDecided(render, await api(`/v1/review/incidents/${encodeURIComponent(id)}/decision`,
        { method: "POST", json: body }));
    } catch (error) {
      fill(problems, problemBox(error));
    }
  };
  const original = incident.suggested.map((t) => ({ field: t.field, code: t.code,
    role: t.role || null, confidence: t.confidence, evidence: t.evidence }));
  let tags = original.map((t) => ({ ...t }));
  const key = (t) => `${t.field}|${t.code}|${t.role || ""}`;
  const changed = () => tags.length !== original.length
    || tags.some((t, i) => key(t) !== key(original[i]));

  const tagRows = h("tbody", {});
  const submit = h("button", { type: "submit" }, "");
  const drawTags = () => {
    fill(tagRows, tags.map((t, i) => {
      const label = `${FIELD_NAMES[t.field]} ${i + 1}`;
      const code = codeControl(t.field, incident.fields[t.field], t.code, `${label}: code`);
      code.addEventListener("change", () => { t.code = code.value; drawButton(); });
      const role = t.field === "location" ? h("select", { "aria-label": `${label}: role` },
        ROLES.map((r) => h("option", { value: r, selected: r === t.role }, r))) : null;
      if (role) role.addEventListener("change", () => { t.role = role.value; drawButton(); });
      const ev = (t.evidence || [])[0];
      return h("tr", { "data-tag": key(t) },
        h("th", { scope: "row" }, FIELD_NAMES[t.field] || t.field),
        h("td", {}, code), h("td", {}, role || ""),
        h("td", { class: "num" }, t.confidence !== undefined
          ? `${Math.round(100 * t.confidence)}%` : "added by you"),
        h("td", {}, ev ? h("q", {}, ev.sentence) : ""),
        h("td", {}, h("button", { type: "button", class: "secondary",
          onclick: () => { tags.splice(i, 1); drawTags(); } },
        `Remove ${tagText(t)}`)));
    }));
    drawButton();
  };
  const drawButton = () => {
    submit.textContent = changed() ? "Save the corrected tags" : "Accept the suggested tags";
  };

  const fieldSelect = h("select", { id: "add-field" }, Object.entries(FIELD_NAMES).map(
    ([f, name]) => h("option", { value: f }, name)));
  const addCode = h("span", {});
  const addRole = h("select", { id: "add-role", "aria-label": "Role of the place" },
    ROLES.map((r) => h("option", { value: r }, r)));
  const drawAdd = () => {
    const f = fieldSelect.value;
    fill(addCode, h("label", { class: "inline" }, "Code ",
      codeControl(f, incident.fields[f], null, "Code of the new tag")));
    addRole.hidden = f !== "location";
  };
  fieldSelect.addEventListener("change", drawAdd);
  const add = () => {
    const f = fieldSelect.value;
    const code = addCode.querySelector("select, input").value;
    if (!code) return;
    const tag = { field: f, code, role: f === "location" ? addRole.value : null };
    if (!tags.some((t) => key(t) === key(tag))) tags.push(tag);
    drawTags();
  };

  const tagsForm = h("form", { class: "panel", "aria-labelledby": "t-h",
    onsubmit: (e) => {
      e.preventDefault();
      decide(changed() ? { action: "correct", tags: tags.map((t) => ({ field: t.field,
        code: t.code, ...(t.role ? { role: t.role } : {}) })) } : { action: "accept" });
    } },
  h("h2", { id: "t-h" }, "Tags"),
  h("p", { class: "muted" }, "The tagger's suggestions, with the sentence that supports each "
    + "(highlighted in the texts above). Change a code or a place's role, remove a tag or "
    + "add one; then save. Unchanged, the suggestions are accepted as they are."),
  h("div", { class: "scroll" }, h("table", { id: "tags" }, h("thead", {}, h("tr", {},
    ["Field", "Code", "Role", "Confidence", "Evidence", ""].map((t) =>
      h("th", { scope: "col" }, t)))), tagRows)),
  h("fieldset", {}, h("legend", {}, "Add a tag"),
    h("label", { class: "inline", for: "add-field" }, "Field "), fieldSelect, " ",
    addCode, " ", addRole, " ",
    h("button", { type: "button", class: "secondary", onclick: add }, "Add the tag")),
  h("p", {}, submit));

  const reason = h("textarea", { id: "reject-reason", rows: 2, maxlength: 1000 });
  const rejectForm = h("form", { class: "panel", "aria-labelledby": "r-h",
    onsubmit: (e) => { e.preventDefault(); decide({ action: "reject", reason: reason.value }); } },
  h("h2", { id: "r-h" }, "Not a trafficking incident"),
  h("label", { for: "reject-reason" }, "Why it is irrelevant"), reason,
  h("p", {}, h("button", { type: "submit", class: "secondary" }, "Reject as irrelevant")));

  const other = h("input", { id: "merge-other", type: "text", maxlength: 64,
    placeholder: "inc_..." });
  const same = incident.possibly_same;
  const mergeForm = h("form", { class: "panel", "aria-labelledby": "m-h",
    onsubmit: (e) => {
      e.preventDefault();
      const chosen = mergeForm.querySelector("input[name=into]:checked");
      decide({ action: "merge", into: other.value.trim() || (chosen && chosen.value) || "" });
    } },
  h("h2", { id: "m-h" }, "The same incident as another"),
  same.length ? h("fieldset", {}, h("legend", {}, "Possibly the same (same month or next, "
    + "a destination and an exploitation type in common)"),
  same.map((s) => h("label", { class: "check" }, h("input", { type: "radio", name: "into",
    value: s.id }), ` ${s.id} (${s.state}): ${s.titles.join("; ") || "no article title"}; `
    + `${s.destinations.map((c) => codeName("location", c)).join(", ")}, `
    + `${s.exploitation_type.join(", ")}`)))
    : h("p", { class: "muted" }, "No incident looks like this one."),
  h("label", { for: "merge-other" }, "Or another incident's id"), other,
  h("p", {}, h("button", { type: "submit", class: "secondary" }, "Merge into that incident")));

  render(`Incident ${incident.id}`,
    h("p", {}, h("a", { href: "#/review" }, "Back to the queue"), ` · waiting for `
      + `${duration(incident.waiting_seconds)} · your claim lasts until `,
    h("strong", {}, incident.claim_expires_at)),
    h("section", { "aria-label": "Articles and reports" },
      incident.items.map((item, n) => itemView(item, incident.suggested, n + 1))),
    problems, tagsForm, rejectForm, mergeForm);
  drawTags();
  drawAdd();
}
