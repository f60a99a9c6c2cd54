// The governance console: the active policies; an editor that validates as you type (the
// hub's own checks, line by line) and shows the diff against the active version; proposing,
// approving and rejecting changes (four eyes); budget use per member over time; the audit
// log, filtered and exported; publishing a release.
//
// API: GET /v1/governance/policies, POST /v1/governance/proposals (dry_run to validate),
// GET /v1/governance/proposals, .../approve, .../reject, .../withdraw,
// GET /v1/governance/budgets(/history), GET /v1/audit(/export), GET /v1/queries,
// POST /v1/releases, GET /v1/directory (names for the ids: names.js; amounts: amounts.js).

import { amount, decimal } from "./amounts.js";
import { api, download } from "./api.js";
import { details as entryDetails, sentence } from "./auditlog.js";
import { fill, h, problemBox } from "./dom.js";
import { names as loadNames } from "./names.js";

const BUDGET_KEYS = ["global", "per_member", "per_query", "per_month"];
// Okabe-Ito: categories colour-blind readers can tell apart
const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442",
  "#000000"];

function diffView(text) {
  return h("pre", { class: "diff", "aria-label": "Changes against the active version" },
    (text || "").split("\n").map((line) => h("span", { class: /^(\+\+\+|---|@@)/.test(line)
      ? "head" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "" },
    `${line}\n`)));
}

function budgetValue(text, key) {
  // The value of budget.<key> in a policy's YAML (block or flow style), or null.
  const re = new RegExp(`(^|[{,\\s])${key}:\\s*"?([0-9./]+)"?`, "m");
  const start = text.search(/^budget:/m);
  if (start < 0) return null;
  const rest = text.slice(start);
  const end = rest.search(/\n\S/);
  const match = (end < 0 ? rest : rest.slice(0, end + 1)).match(re);
  return match ? match[2] : null;
}

function withBudget(text, key, value) {
  // The same YAML with budget.<key> set to value (only inside the budget mapping).
  const start = text.search(/^budget:/m);
  if (start < 0) return text;
  const rest = text.slice(start);
  const end = rest.search(/\n\S/); // the next top-level key ends the budget mapping
  const block = end < 0 ? rest : rest.slice(0, end + 1);
  const re = new RegExp(`(^|[{,\\s])(${key}:\\s*)"?[0-9./]+"?`, "m");
  if (!re.test(block)) return text;
  return text.slice(0, start) + block.replace(re, `$1$2"${value}"`) + rest.slice(block.length);
}

export async function show({ me, render }) {
  const policiesBox = h("section", { class: "panel", "aria-labelledby": "p-h" });
  const editorBox = h("section", { class: "panel", "aria-labelledby": "ed-h" });
  const proposalsBox = h("section", { class: "panel", "aria-labelledby": "pr-h" });
  const budgetsBox = h("section", { class: "panel", "aria-labelledby": "b-h" });
  const auditBox = h("section", { class: "panel", "aria-labelledby": "a-h" });
  const publishBox = h("section", { class: "panel", "aria-labelledby": "pub-h" });
  render("Governance console", policiesBox, editorBox, proposalsBox, budgetsBox, publishBox,
    auditBox);
  let active = [];
  const names = await loadNames();

  // -- the active policies ---------------------------------------------------------------
  async function policies() {
    active = await api("/v1/governance/policies");
    fill(policiesBox, h("h2", { id: "p-h" }, "Active policies"),
      active.length ? h("table", { id: "policies" }, h("thead", {}, h("tr", {},
        ["Dataset", "Version", "Active since", "Scheduled", "Waiting for review", ""]
          .map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, active.map((p) => h("tr", { "data-dataset": p.dataset },
        h("th", { scope: "row" }, p.dataset), h("td", { class: "num" }, p.version ?? "-"),
        h("td", {}, p.activated_at || "-"),
        h("td", {}, p.scheduled.map((s) => `v${s.version} at ${s.effective_at}`).join(", ")
          || "-"),
        h("td", { class: "num" }, p.pending),
        h("td", {}, p.yaml ? h("button", { type: "button", class: "secondary",
          onclick: () => edit(p.dataset, p.yaml) }, `Edit ${p.dataset}`) : "")))))
        : h("p", { class: "empty" }, "No dataset has an active policy: nothing can be queried."));
  }

  // -- the editor (CodeMirror 6: policyeditor.js) ------------------------------------------
  async function edit(dataset, text) {
    const { policyEditor } = await import("./policyeditor.js");
    let filename = `${dataset}.yaml`;
    const status = h("div", { id: "policy-check", "aria-live": "polite" });
    const editor = policyEditor({ text, id: "policy-text", labelledBy: "policy-label",
      describedBy: "policy-keys policy-check", onEdit: () => { syncForm(); check(); } });
    const diff = h("div", { id: "policy-diff" });
    const inputs = {};
    const budgetForm = h("fieldset", { id: "budget-form" }, h("legend", {}, "Budget"),
      BUDGET_KEYS.map((key) => {
        inputs[key] = h("input", { id: `budget-${key}`, name: key, inputmode: "decimal",
          size: 8, oninput: (e) => {
            editor.setText(withBudget(editor.text(), key, e.target.value));
            check();
          } });
        return h("label", { class: "inline", for: `budget-${key}` }, `${key} `, inputs[key]);
      }));
    const effective = h("input", { type: "date", id: "effective-at" });
    const note = h("input", { id: "proposal-note", size: 50 });
    const upload = h("input", { type: "file", id: "policy-file", accept: ".yaml,.yml",
      onchange: async (e) => {
        const file = e.target.files[0];
        if (!file) return;
        editor.setText(await file.text());
        filename = file.name;
        syncForm();
        check();
      } });
    let timer = null;

    function syncForm() {
      for (const key of BUDGET_KEYS) {
        const value = budgetValue(editor.text(), key);
        inputs[key].value = value ?? "";
        inputs[key].disabled = value === null;
      }
    }

    function proposal(yamlText, dryRun) {
      return { yaml: yamlText, filename, effective_at: effective.value || null,
        note: note.value || null, dry_run: dryRun };
    }

    function check() {
      // The hub's dry run of the text as it is now; an answer for text since edited is
      // dropped (the edit scheduled its own check).
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const sent = editor.text();
        try {
          const view = await api("/v1/governance/proposals", { method: "POST",
            json: proposal(sent, true) });
          if (sent !== editor.text()) return;
          editor.mark([]);
          fill(status, h("p", { class: "ok" }, "Valid. ", view.budget_changed
            ? "This changes the budget: the audit log will say so." : ""));
          fill(diff, h("h3", {}, `Changes against version ${view.base_version ?? "-"}`),
            diffView(view.diff));
        } catch (error) {
          if (sent !== editor.text()) return;
          editor.mark(((error.body || {}).errors || []).filter((e) => e.line).map((e) => ({
            line: e.line, message: `${e.field ? `${e.field}: ` : ""}${e.reason}` })));
          fill(status, problemBox(error));
          fill(diff);
        }
      }, 300);
    }

    async function propose() {
      try {
        const view = await api("/v1/governance/proposals", { method: "POST",
          json: proposal(editor.text(), false) });
        fill(status, h("p", { class: "ok", role: "status" }, `Proposed as ${view.dataset} `
          + `version ${view.version} (${view.id}); another officer must approve it.`));
        await Promise.all([proposals(), policies()]);
      } catch (error) {
        fill(status, problemBox(error));
      }
    }

    fill(editorBox, h("h2", { id: "ed-h" }, `Edit the policy of ${dataset}`),
      h("p", { class: "muted" }, "Checked by the hub as you type; nothing changes until "
        + "another governance officer approves your proposal."),
      budgetForm,
      h("label", { for: "policy-file" }, "Or load a policy file"), upload,
      h("label", { id: "policy-label", onclick: () => editor.focus() }, "Policy (YAML)"),
      h("p", { class: "muted hint", id: "policy-keys" }, "Errors are marked on their lines; "
        + "Ctrl-Shift-M lists them, F8 goes to the next. Tab leaves the editor; Ctrl-] and "
        + "Ctrl-[ indent."),
      editor.dom, status, diff,
      h("label", { for: "effective-at" }, "Takes effect on (empty: as soon as approved)"),
      effective, h("label", { for: "proposal-note" }, "Why (shown to reviewers)"), note,
      h("p", {}, h("button", { type: "button", id: "propose", onclick: propose },
        "Propose this change")));
    syncForm();
    check();
    editor.focus();
  }

  // -- proposals ---------------------------------------------------------------------------
  async function proposals() {
    const pending = await api("/v1/governance/proposals");
    const decide = (p, action) => async () => {
      const field = document.getElementById(`decision-${p.id}`);
      const json = action === "reject" ? { reason: field.value } : action === "approve"
        ? { note: field.value || null } : undefined;
      try {
        await api(`/v1/governance/proposals/${p.id}/${action}`, { method: "POST", json });
        await Promise.all([proposals(), policies(), budgets()]);
      } catch (error) {
        document.getElementById(`proposal-${p.id}`).append(problemBox(error));
      }
    };
    fill(proposalsBox, h("h2", { id: "pr-h" }, "Waiting for review"),
      pending.length ? pending.map((p) => {
        const mine = p.proposed_by === me.client_id;
        return h("article", { class: "proposal", id: `proposal-${p.id}` },
          h("h3", {}, `${p.dataset} version ${p.version}`),
          h("p", { class: "proposed-by" }, "Proposed by ",
            mine ? "you" : names.who(p.proposed_by, p.proposed_org), ` at ${p.proposed_at}`
            + (p.effective_at ? `, to take effect at ${p.effective_at}` : "")
            + (p.note ? `: "${p.note}"` : "")),
          p.approvals.length ? h("p", { class: "approved-by" }, "Approved by ",
            p.approvals.map((a) => [names.who(a.actor, a.org), ` at ${a.at}`,
              a.note ? ` ("${a.note}")` : ""]).flatMap((a, i) => (i ? ["; ", a] : [a])))
            : null,
          h("p", { class: "muted" }, `Still needed: ${p.still_needed.officers} officer(s)`
            + (p.still_needed.organisations ? `, ${p.still_needed.organisations} more `
              + "organisation(s)" : "")),
          h("details", {}, h("summary", {}, "Show the changes"), h("div", {
            "data-proposal-diff": p.id })),
          h("label", { for: `decision-${p.id}` }, mine ? "Withdraw your proposal"
            : "Note, or the reason for a rejection"),
          mine ? null : h("input", { id: `decision-${p.id}`, size: 50 }),
          h("p", {}, mine
            ? h("button", { type: "button", class: "secondary",
              onclick: decide(p, "withdraw") }, "Withdraw")
            : [h("button", { type: "button", onclick: decide(p, "approve") },
              `Approve ${p.dataset} version ${p.version}`), " ",
            h("button", { type: "button", class: "secondary",
              onclick: decide(p, "reject") }, "Reject")]));
      }) : h("p", { class: "empty" }, "No proposal waits for review."));
    for (const details of proposalsBox.querySelectorAll("details")) {
      details.addEventListener("toggle", async () => {
        const holder = details.querySelector("[data-proposal-diff]");
        if (!details.open || holder.childElementCount) return;
        const full = await api(`/v1/governance/proposals/${holder.dataset.proposalDiff}`);
        fill(holder, diffView(full.diff));
      });
    }
  }

  // -- budgets -----------------------------------------------------------------------------
  async function budgets() {
    const [totals, series] = await Promise.all([api("/v1/governance/budgets"),
      api("/v1/governance/budgets/history")]);
    const chart = h("div", { id: "budget-chart", class: "chart", role: "figure",
      "aria-label": "Cumulative budget spent per member and dataset" });
    fill(budgetsBox, h("h2", { id: "b-h" }, "Budget use"),
      totals.map((t) => h("table", { "data-budget": t.dataset },
        h("caption", {}, `${t.dataset} (${t.accounting}): global `,
          amount(t.global, t.accounting), ", per member ", amount(t.per_member, t.accounting)),
        h("thead", {}, h("tr", {}, ["Member", "Spent", "Left", "All members left"]
          .map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, t.members.length ? t.members.map((m) => h("tr", { "data-org": m.org },
          h("td", {}, names.org(m.org)), h("td", { class: "num" }, amount(m.member.spent)),
          h("td", { class: "num" }, amount(m.member.left)),
          h("td", { class: "num" }, amount(m.global.left))))
          : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Nothing spent yet."))))),
      series.length ? chart : h("p", { class: "empty" }, "Nothing has been spent yet."));
    if (!series.length) return;
    const values = series.map((p) => {
      const [n, d = "1"] = p.spent.split("/");
      return { ...p, member: names.orgName(p.org), value: Number(n) / Number(d),
        shown: decimal(p.spent) };
    });
    await window.vegaEmbed(chart, {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json", width: "container",
      height: 240, data: { values },
      mark: { type: "line", point: true, interpolate: "step-after" },
      encoding: {
        x: { field: "at", type: "temporal", title: "time" },
        y: { field: "value", type: "quantitative", title: "spent (cumulative)" },
        color: { field: "member", type: "nominal", title: "member",
          scale: { range: PALETTE } },
        strokeDash: { field: "dataset", type: "nominal" },
        tooltip: [{ field: "dataset" }, { field: "member" }, { field: "shown", title: "spent" },
          { field: "spent", title: "exact" }, { field: "org", title: "id" },
          { field: "at", type: "temporal", timeUnit: "yearmonthdatehoursminutes" }],
      },
    }, { renderer: "svg", actions: false });
  }

  // -- publishing a release -----------------------------------------------------------------
  async function publish() {
    const released = (await api("/v1/queries")).filter((q) => q.status === "released");
    if (!released.length) {
      fill(publishBox, h("h2", { id: "pub-h" }, "Publish a release"), h("p", { class: "empty" },
        "Your organisation has no released query to publish yet."));
      return;
    }
    const pick = h("select", { id: "publish-query" }, released.reverse().map((q) =>
      h("option", { value: q.id }, `${q.created_at} · ${q.dataset} · by `
        + `${((q.shape || {}).dimensions || []).map((d) => d.name).join(", ") || "nothing"}`)));
    const title = h("input", { id: "publish-title", size: 40 });
    const others = [...names.orgs.values()].filter((o) => o.id !== me.org);
    const everyone = h("input", { type: "radio", name: "publish-to", id: "publish-all",
      value: "all", checked: true });
    const some = h("input", { type: "radio", name: "publish-to", id: "publish-some",
      value: "named" });
    const audience = h("fieldset", { id: "publish-audience" }, h("legend", {}, "Audience"),
      h("label", { class: "check", for: "publish-all" }, everyone, " Every member"),
      h("label", { class: "check", for: "publish-some" }, some, " Only these organisations:"),
      others.map((o) => h("label", { class: "check", title: o.id }, h("input", {
        type: "checkbox", name: "publish-org", value: o.id,
        onchange: () => { some.checked = true; } }), ` ${o.name}`)));
    const out = h("div", { "aria-live": "polite" });
    fill(publishBox, h("h2", { id: "pub-h" }, "Publish a release"),
      h("p", { class: "muted" }, "A result your organisation paid for, shared at no further "
        + "cost."),
      h("label", { for: "publish-query" }, "Query"), pick,
      h("label", { for: "publish-title" }, "Title"), title,
      audience,
      h("p", {}, h("button", { type: "button", id: "publish", onclick: async () => {
        const to = everyone.checked ? "all" : [...audience.querySelectorAll(
          "input[name=publish-org]:checked")].map((box) => box.value);
        try {
          const view = await api("/v1/releases", { method: "POST", json: {
            query_id: pick.value, audience: to, title: title.value } });
          fill(out, h("p", { role: "status" }, `Published as ${view.id} (${view.outcome}).`));
        } catch (error) {
          fill(out, problemBox(error));
        }
      } }, "Publish")), out);
  }

  // -- the audit log -----------------------------------------------------------------------
  function audit() {
    const people = [...names.people.values()];
    const inputs = {
      member: h("select", { id: "audit-member" }, h("option", { value: "" }, "any"),
        [...names.orgs.values()].map((o) => h("option", { value: o.id, title: o.id }, o.name))),
      actor: h("input", { id: "audit-actor", size: 22, list: "audit-people",
        placeholder: "a person, or an id" }),
      action: h("input", { id: "audit-action", size: 18, placeholder: "e.g. policy.*" }),
      since: h("input", { id: "audit-since", type: "date" }),
      until: h("input", { id: "audit-until", type: "date" }),
    };
    const table = h("div", { id: "audit-entries" });
    const params = () => new URLSearchParams(Object.entries(inputs)
      .filter(([, el]) => el.value).map(([k, el]) => [k, el.value]));
    async function search(cursor) {
      const query = params();
      if (cursor) query.set("cursor", cursor);
      query.set("limit", "50");
      try {
        const page = await api(`/v1/audit?${query}`);
        fill(table, page.entries.length ? h("table", {}, h("thead", {}, h("tr", {},
          ["#", "When", "What happened"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, page.entries.map((e) => h("tr", { "data-action": e.action },
          h("td", { class: "num" }, e.seq), h("td", {}, e.at),
          h("td", { class: "details" }, sentence(e, names), entryDetails(e, names)))))) :
          h("p", { class: "empty" }, "No entry matches."),
        page.next_cursor ? h("button", { type: "button", class: "secondary",
          onclick: () => search(page.next_cursor) }, "Next entries") : null);
      } catch (error) {
        fill(table, problemBox(error));
      }
    }
    const exportAs = (format) => async () => {
      const query = params();
      query.set("format", format);
      try {
        await download(`/v1/audit/export?${query}`, `audit.${format === "csv" ? "csv"
          : "jsonl"}`);
      } catch (error) {
        fill(table, problemBox(error));
      }
    };
    fill(auditBox, h("h2", { id: "a-h" }, "Audit log"),
      h("form", { id: "audit-filter", onsubmit: (e) => { e.preventDefault(); search(); } },
        Object.entries(inputs).map(([k, el]) => h("label", { class: "inline",
          for: el.id }, `${k} `, el)),
        h("datalist", { id: "audit-people" }, people.map((p) => h("option", { value: p.id },
          `${p.name} (${names.orgName(p.org)})`))),
        h("button", { type: "submit" }, "Search"), " ",
        h("button", { type: "button", class: "secondary", onclick: exportAs("jsonl") },
          "Export JSONL"), " ",
        h("button", { type: "button", class: "secondary", onclick: exportAs("csv") },
          "Export CSV")), table);
    search();
  }

  await Promise.all([policies(), proposals(), budgets(), publish()]);
  audit();
  fill(editorBox, h("h2", { id: "ed-h" }, "Edit a policy"),
    h("p", { class: "muted" }, "Choose Edit next to a dataset above."));
}
