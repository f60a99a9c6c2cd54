// The analyst workspace: pick a dataset, dimensions, measures and filters from only what your
// policy allows, see the expected error and the budget that would remain (spending nothing),
// run the query, see the picture and the table, download the cells.
//
// API: GET /v1/policies/mine, /v1/contracts, POST /v1/queries/estimate, POST /v1/queries,
// GET /v1/queries (history), GET /v1/queries/{id} (a release again, free), GET /v1/releases,
// GET /v1/queries/{id}/export?format=csv|parquet.

import { api, download } from "./api.js";
import { draw } from "./charts.js";
import { fill, h, problemBox } from "./dom.js";

const SHARES = [1 / 100, 1 / 50, 1 / 20, 1 / 10, 1 / 5, 1 / 4, 1 / 2, 1];

function gcd(a, b) { return b ? gcd(b, a % b) : a; }

function fraction(text) {
  // "1/5" or "0.2" -> [numerator, denominator] (exact, as the hub's amounts are)
  if (text.includes("/")) return text.split("/").map(Number);
  const [whole, frac = ""] = text.split(".");
  const den = 10 ** frac.length;
  return [Number(whole) * den + Number(frac || 0), den];
}

function costs(perQuery) {
  // The slider's stops: exact shares of the per-query cap, "n/d" strings.
  const [num, den] = fraction(perQuery);
  return SHARES.map((share) => {
    const sd = Math.round(1 / share);
    const n = num;
    const d = den * sd;
    const g = gcd(n, d);
    return d / g === 1 ? String(n / g) : `${n / g}/${d / g}`;
  });
}

function measureKey(m) { return m.field ? `${m.function}:${m.field}` : m.function; }

function measureBody(key) {
  const [fn, field] = key.split(":");
  if (!field) return fn;
  return fn === "quantile" ? { function: fn, field, quantile: 0.5 } : { function: fn, field };
}

async function contractFields(dataset) {
  const all = await api("/v1/contracts");
  const newest = Math.max(...all.filter((c) => c.dataset === dataset).map((c) => c.version));
  const contract = await api(`/v1/contracts/${dataset}/${newest}`);
  return Object.fromEntries(contract.fields.map((f) => [f.name, f]));
}

function fmt(x) {
  if (x === null || x === undefined) return "";
  return Math.abs(x) >= 1000 ? Math.round(x).toLocaleString("en") : String(Math.round(x * 100) / 100);
}

export async function show({ render }) {
  const policies = await api("/v1/policies/mine");
  if (!policies.length) {
    render("Analyst workspace", h("p", { class: "empty" },
      "No sharing policy lets you query any dataset (deny by default)."));
    return;
  }
  const form = h("form", { class: "panel", "aria-labelledby": "q-h", onsubmit: (e) => {
    e.preventDefault(); run(); } });
  const estimateBox = h("section", { class: "panel", "aria-live": "polite",
    "aria-labelledby": "e-h" }, h("h2", { id: "e-h" }, "Before you spend"));
  const resultBox = h("section", { "aria-labelledby": "r-h" });
  const historyBox = h("section", { class: "panel", "aria-labelledby": "h-h" });
  render("Analyst workspace", h("div", { class: "grid" }, form, estimateBox), resultBox,
    historyBox);

  const datasetSelect = h("select", { id: "dataset", name: "dataset" },
    policies.map((p) => h("option", { value: p.dataset }, p.dataset)));
  let fields = {};
  let chosen = { policy: null, rule: null };
  let timer = null;

  async function chooseDataset() {
    const policy = policies.find((p) => p.dataset === datasetSelect.value);
    fields = await contractFields(policy.dataset);
    chosen = { policy, rule: policy.rules[0] };
    build();
  }

  function build() {
    const { policy, rule } = chosen;
    const ruleSelect = policy.rules.length > 1 ? [h("label", { for: "rule" }, "Kind of question"),
      h("select", { id: "rule", onchange: (e) => {
        chosen.rule = policy.rules.find((r) => r.name === e.target.value); build(); } },
      policy.rules.map((r) => h("option", { value: r.name, selected: r === rule }, r.name)))]
      : [];
    const dims = h("fieldset", { id: "dimensions" },
      h("legend", {}, `Group by (at most ${rule.max_dimensions})`),
      rule.dimensions.map((d) => h("label", { class: "check" },
        h("input", { type: "checkbox", name: "dimension", value: d, onchange: limitDims }),
        ` ${d}`)));
    const measures = h("fieldset", { id: "measures" }, h("legend", {}, "Measures"),
      rule.measures.map((m, i) => h("label", { class: "check" },
        h("input", { type: "checkbox", name: "measure", value: measureKey(m), checked: i === 0,
          onchange: changed }),
        ` ${m.field ? `${m.function} of ${m.field}` : m.function}`)));
    const filters = h("fieldset", { id: "filters" }, h("legend", {}, "Filters"),
      rule.filters.length ? rule.filters.map(filterInput)
        : h("p", { class: "muted" }, "This rule allows no filter."));
    const stops = costs(policy.per_query);
    const output = h("output", { id: "cost-value", for: "cost" });
    const slider = h("input", { type: "range", id: "cost", min: 0, max: stops.length - 1,
      step: 1, value: 3, "aria-valuetext": stops[3], oninput: () => {
        output.textContent = `${stops[slider.value]} (${policy.accounting === "pure"
          ? "epsilon" : "rho"})`;
        slider.setAttribute("aria-valuetext", stops[slider.value]);
        changed();
      } });
    slider.dataset.stops = JSON.stringify(stops);
    output.textContent = `${stops[3]} (${policy.accounting === "pure" ? "epsilon" : "rho"})`;
    fill(form,
      h("h2", { id: "q-h" }, "Your question"),
      h("label", { for: "dataset" }, "Dataset"), datasetSelect, ...ruleSelect,
      dims, measures, filters,
      h("label", { for: "cost" }, "Privacy cost: more cost, less noise"), slider, " ", output,
      h("p", {}, h("button", { type: "submit", id: "run" }, "Run the query (spends budget)")));
    changed();
  }

  function filterInput(name) {
    const f = fields[name] || {};
    if (f.type === "period") {
      return h("div", { class: "filter" }, h("span", {}, `${name}: `),
        h("label", { class: "inline" }, "from ", h("input", { type: "month", name: `${name}.from`,
          "data-filter": name, onchange: changed })),
        h("label", { class: "inline" }, " to ", h("input", { type: "month", name: `${name}.to`,
          "data-filter": name, onchange: changed })));
    }
    const options = ((f.domain && f.domain.categories) || []).map((c) =>
      h("option", { value: c.code }, `${c.code} - ${c.label}`));
    return [h("label", { for: `filter-${name}` }, `${name} (any if none chosen)`),
      h("select", { id: `filter-${name}`, multiple: true, size: 4, "data-filter": name,
        onchange: changed }, options)];
  }

  function limitDims() {
    const boxes = [...form.querySelectorAll("input[name=dimension]")];
    const picked = boxes.filter((b) => b.checked).length;
    for (const b of boxes) b.disabled = !b.checked && picked >= chosen.rule.max_dimensions;
    changed();
  }

  function body() {
    const stops = JSON.parse(form.querySelector("#cost").dataset.stops);
    const filters = {};
    for (const el of form.querySelectorAll("[data-filter]")) {
      const name = el.dataset.filter;
      if (el.tagName === "SELECT") {
        const codes = [...el.selectedOptions].map((o) => o.value);
        if (codes.length) filters[name] = codes;
      } else if (el.value) {
        const month = el.value;
        filters[name] = { ...(filters[name] || {}), [el.name.endsWith(".from") ? "from" : "to"]:
          month };
      }
    }
    for (const [name, value] of Object.entries(filters)) {
      if (value.from && !value.to) filters[name] = { from: value.from, to: value.from };
      if (value.to && !value.from) filters[name] = { from: value.to, to: value.to };
    }
    return {
      dataset: chosen.policy.dataset,
      group_by: [...form.querySelectorAll("input[name=dimension]:checked")].map((b) => b.value),
      measures: [...form.querySelectorAll("input[name=measure]:checked")]
        .map((b) => measureBody(b.value)),
      filters,
      cost: stops[form.querySelector("#cost").value],
    };
  }

  function changed() {
    clearTimeout(timer);
    timer = setTimeout(estimate, 250);
  }

  async function estimate() {
    const question = body();
    const heading = h("h2", { id: "e-h" }, "Before you spend");
    if (!question.measures.length) {
      fill(estimateBox, heading, h("p", { class: "empty" }, "Choose a measure."));
      return;
    }
    try {
      const e = await api("/v1/queries/estimate", { method: "POST", json: question });
      const refused = e.would_be_refused;
      fill(estimateBox, heading,
        h("p", {}, `Cost ${e.cost.amount} (${e.accounting || e.cost.measure}), `
          + `${e.cells.toLocaleString("en")} cells; nothing is spent by this estimate.`),
        h("table", { id: "expected" }, h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Measure"), h("th", { scope: "col" }, "Expected error (95%)"))),
        h("tbody", {}, e.measures.map((m) => h("tr", {}, h("th", { scope: "row" }, m.name),
          h("td", { class: "num" }, m.halfwidth_95 === null ? "depends on the data"
            : `± ${fmt(m.halfwidth_95)}`))))),
        h("p", { id: "budget-after" }, e.reused
          ? "You asked this before: the stored answer is returned free."
          : `Your organisation's budget left after it: ${e.budget_after.member_left}`
            + ` (all members: ${e.budget_after.global_left}).`),
        refused ? problemBox({ message: refused.detail, body: { rule: refused.rule } })
          : null);
      form.querySelector("#run").disabled = Boolean(refused);
    } catch (error) {
      fill(estimateBox, heading, problemBox(error));
      form.querySelector("#run").disabled = true;
    }
  }

  async function run() {
    const button = form.querySelector("#run");
    button.disabled = true;
    fill(resultBox, h("p", { class: "muted" }, "Running…"));
    try {
      showResult(await api("/v1/queries", { method: "POST", json: body() }));
    } catch (error) {
      fill(resultBox, problemBox(error));
    }
    button.disabled = false;
    estimate();
    history();
  }

  const fieldsOf = { };

  async function showResult(result) {
    // a published release may be of another dataset than the one being edited
    fieldsOf[result.dataset] = fieldsOf[result.dataset] || await contractFields(result.dataset);
    const resultFields = fieldsOf[result.dataset];
    const names = result.measures.map((m) => m.name);
    const chart = h("div", { id: "chart", class: "chart", role: "figure",
      "aria-label": `${names[0]} by ${result.dimensions.join(" and ") || "nothing"}` });
    const pick = names.length > 1 ? h("select", { id: "chart-measure", onchange: (e) =>
      draw(chart, result, resultFields, e.target.value) },
      names.map((n) => h("option", { value: n }, n))) : null;
    const top = [...result.rows].sort((a, b) =>
      ((b[names[0]] || {}).value || 0) - ((a[names[0]] || {}).value || 0)).slice(0, 200);
    const table = h("table", { id: "cells" },
      h("caption", { class: "muted" }, `${result.rows.length.toLocaleString("en")} cells`
        + (result.rows.length > 200 ? "; the 200 largest shown, all in the download" : "")),
      h("thead", {}, h("tr", {}, [...result.dimensions, ...names.flatMap((n) =>
        [n, `${n} 95% low`, `${n} 95% high`])].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, top.map((row) => h("tr", {},
        result.dimensions.map((d) => h("td", {}, row[d] ?? "(unknown)")),
        names.flatMap((n) => [row[n].value, row[n].low, row[n].high].map((v) =>
          h("td", { class: "num" }, v === undefined ? "" : fmt(v))))))));
    const path = result.publication ? `/v1/releases/${result.publication.id}`
      : `/v1/queries/${result.query_id}`;
    const link = (format) => h("button", { type: "button", class: "secondary",
      id: `download-${format}`, onclick: () => download(`${path}/export?format=${format}`,
        `${result.query_id}.${format}`).catch((error) => resultBox.prepend(problemBox(error))) },
    `Download ${format.toUpperCase()}`);
    fill(resultBox,
      h("h2", { id: "r-h" }, `Answer: ${result.dataset}`),
      h("p", { id: "charged" }, result.reused ? "Returned again from your stored releases: free."
        : `Charged ${result.charged.amount} (${result.accounting}); your organisation has `
          + `${result.budget.member.left} left.`),
      h("p", { class: "muted" }, result.bounding.note),
      pick ? h("label", { for: "chart-measure" }, "Measure shown") : null, pick, chart,
      h("p", {}, link("csv"), " ", link("parquet")), table);
    await draw(chart, result, resultFields, names[0]);
  }

  async function history() {
    const [entries, releases] = await Promise.all([api("/v1/queries"), api("/v1/releases")]);
    fill(historyBox, h("h2", { id: "h-h" }, "Your organisation's queries"),
      entries.length ? h("table", { id: "history" }, h("thead", {}, h("tr", {},
        ["When", "Dataset", "Dimensions", "Cost", "Status", ""].map((t) =>
          h("th", { scope: "col" }, t)))),
      h("tbody", {}, [...entries].reverse().map((e) => h("tr", {},
        h("td", {}, e.created_at), h("td", {}, e.dataset),
        h("td", {}, ((e.shape || {}).dimensions || []).map((d) => d.name).join(", ")),
        h("td", { class: "num" }, e.cost.amount), h("td", {}, e.status),
        h("td", {}, e.status === "released" ? h("button", { type: "button", class: "secondary",
          onclick: async () => showResult(await api(`/v1/queries/${e.id}`)) }, "Show (free)")
          : ""))))) : h("p", { class: "empty" }, "No queries yet."),
      h("h2", {}, "Releases published to you"),
      releases.length ? h("ul", { id: "releases" }, releases.map((r) => h("li", {},
        h("button", { type: "button", class: "secondary", onclick: async () =>
          showResult(await api(`/v1/releases/${r.id}`)) }, r.title),
        ` - ${r.dataset}, by ${r.publisher}, ${r.published_at}`)))
        : h("p", { class: "empty" }, "No releases have been published to your organisation."));
  }

  datasetSelect.addEventListener("change", chooseDataset);
  await chooseDataset();
  await history();
}
