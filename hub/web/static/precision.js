// The precision of the tagger's suggestions, from the reviewers' decisions (role reviewer,
// docs/osint.md#review): per field and code, how often it was suggested, how often reviewers
// kept it, and the tags they added that were not suggested (the tagger's misses); over every
// decision or a date range.
//
// API: GET /v1/review/precision?since=&until=

import { api } from "./api.js";
import { fill, h, problemBox } from "./dom.js";
import { codeName, FIELD_NAMES } from "./review.js";

function share(value) {
  return value === null || value === undefined ? "-" : `${Math.round(100 * value)}%`;
}

export async function show({ render }) {
  const since = h("input", { id: "p-since", type: "date" });
  const until = h("input", { id: "p-until", type: "date" });
  const out = h("div", { "aria-live": "polite" });
  const load = async () => {
    const query = new URLSearchParams();
    if (since.value) query.set("since", since.value);
    if (until.value) query.set("until", until.value);
    try {
      const r = await api(`/v1/review/precision?${query}`);
      const by = Object.entries(r.by_action).map(([a, n]) => `${n} ${a}`).join(", ");
      const rows = r.fields.flatMap((f) => [
        h("tr", { class: "total", "data-field": f.field },
          h("th", { scope: "rowgroup", colspan: 3 }, FIELD_NAMES[f.field] || f.field),
          h("td", { class: "num" }, f.suggested), h("td", { class: "num" }, f.kept),
          h("td", { class: "num" }, share(f.precision)), h("td", { class: "num" }, f.added)),
        ...r.tags.filter((t) => t.field === f.field).map((t) => h("tr", {
          "data-tag": `${t.field}|${t.code}|${t.role || ""}` },
        h("td", {}, ""), h("th", { scope: "row" }, codeName(t.field, t.code)),
        h("td", {}, t.role || ""),
        h("td", { class: "num" }, t.suggested), h("td", { class: "num" }, t.kept),
        h("td", { class: "num" }, share(t.precision)), h("td", { class: "num" }, t.added)))]);
      fill(out, h("p", { "data-testid": "decisions" }, `${r.decisions} decision`
        + `${r.decisions === 1 ? "" : "s"} (${by}).`),
      rows.length ? h("div", { class: "scroll" }, h("table", { id: "precision" },
        h("thead", {}, h("tr", {}, ["Field", "Code", "Role", "Suggested", "Kept",
          "Precision", "Added by reviewers"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows)))
        : h("p", { class: "empty" }, "No decision has judged a suggested tag yet."));
    } catch (error) {
      fill(out, problemBox(error));
    }
  };
  render("Tag precision",
    h("p", { class: "muted" }, "For each tag the tagger suggested: how many times, how many "
      + "times reviewers kept it (accepted, or corrected keeping it; a rejected incident keeps "
      + "none), and the tags reviewers added that were not suggested. Merges judge no tag."),
    h("form", { class: "panel", onsubmit: (e) => { e.preventDefault(); load(); } },
      h("label", { class: "inline", for: "p-since" }, "Decided from "), since, " ",
      h("label", { class: "inline", for: "p-until" }, "until (not included) "), until, " ",
      h("button", { type: "submit" }, "Show")),
    out);
  await load();
}
