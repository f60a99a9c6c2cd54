// The analyst workspace: pick a dataset, the kind of answer (every cell, the largest ranked,
// the largest routes), dimensions, measures and filters from only what your policy allows;
// see the cost the workspace proposes for a meaningful view and why (accuracy.js), the
// expected error and the budget that would remain (spending nothing); run the query, see the
// answer with its intervals (answer.js), download the cells, and set it beside the same
// question asked of another dataset (beside.js: incidents beside case records).
//
// API: GET /v1/policies/mine, /v1/contracts, /v1/budgets/{dataset}, POST /v1/queries/estimate,
// POST /v1/queries, GET /v1/queries (history), GET /v1/queries/{id} (a release again, free),
// GET /v1/releases, GET /v1/queries/{id}/export?format=csv|parquet.

import {
  DEFAULT_STOP, affordable, compare, mainMeasure, stops as costStops, targetFor, withStop,
} from "./accuracy.js";
import { amount, decimal, symbol } from "./amounts.js";
import { api } from "./api.js";
import { showAnswer } from "./answer.js";
import { besideBox } from "./beside.js";
import { fmt } from "./cells.js";
import { fill, h, problemBox } from "./dom.js";

const STAGES = ["origin", "transit", "destination"];
const ROUTE_MEASURES = ["count_units", "linked_units"];
const TOP_K = 10; // the default k, lowered to the rule's max_top_k (GET /v1/policies/mine)

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

function routeOf(fields, rule) {
  // The route stages a rule can group by (origin -> transit -> destination), or null.
  const stages = Object.values(fields).filter((f) => f.route_stage)
    .sort((a, b) => STAGES.indexOf(a.route_stage) - STAGES.indexOf(b.route_stage));
  const counts = rule.measures.some((m) => ROUTE_MEASURES.includes(m.function));
  if (stages.length < 2 || !counts || !stages.every((f) => rule.dimensions.includes(f.name))) {
    return null;
  }
  return stages.map((f) => f.name);
}

function costOf(text, policy) { return amount(text, policy.accounting); }

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
  const besideSection = h("section", { class: "panel", "aria-labelledby": "beside-h",
    hidden: true });
  const historyBox = h("section", { class: "panel", "aria-labelledby": "h-h" });
  render("Analyst workspace", h("div", { class: "grid" }, form, estimateBox), resultBox,
    besideSection, historyBox);

  const datasetSelect = h("select", { id: "dataset", name: "dataset" },
    policies.map((p) => h("option", { value: p.dataset }, p.dataset)));
  let fields = {};
  const chosen = { policy: null, rule: null, kind: "cells" };
  // the cost: "recommended" (from a target, accuracy.js) until the reader moves the slider
  const cost = { mode: "recommended", stops: [], index: 0, mark: "" };
  let timer = null;
  let armed = false;
  let pending = Promise.resolve();
  let asked = 0;

  async function chooseDataset() {
    const policy = policies.find((p) => p.dataset === datasetSelect.value);
    fields = await contractFields(policy.dataset);
    Object.assign(chosen, { policy, rule: policy.rules[0], kind: "cells" });
    build();
  }

  function kindChoice() {
    const { rule } = chosen;
    const maxK = rule.max_top_k ?? TOP_K;
    const route = maxK > 0 ? routeOf(fields, rule) : null;
    if ((!route && chosen.kind === "routes") || (maxK === 0 && chosen.kind === "top")) {
      chosen.kind = "cells";
    }
    const kinds = [["cells", "Every cell"], ...(maxK > 0 ? [["top", "The largest, ranked"]] : []),
      ...(route ? [["routes", "Largest routes"]] : [])];
    return h("fieldset", { id: "answer-kind" }, h("legend", {}, "Kind of answer"),
      kinds.map(([value, text]) => h("label", { class: "check" },
        h("input", { type: "radio", name: "kind", id: `kind-${value}`, value,
          checked: chosen.kind === value, onchange: () => { chosen.kind = value; build(); } }),
        ` ${text}`)),
      route && chosen.kind === "routes" ? h("p", { class: "muted hint" }, "Largest routes: "
        + `distinct units (people, customers) per route ${route.join(" → ")}, assembled per `
        + "unit from every partner's rows, ranked by OpenDP's noisy top-k.") : null,
      chosen.kind === "cells" ? null : [h("label", { for: "top-k" }, "How many (top k)"),
        h("input", { type: "number", id: "top-k", min: 1, max: maxK, step: 1,
          value: Math.min(TOP_K, maxK), oninput: changed })]);
  }

  function build() {
    const { policy, rule } = chosen;
    const ruleSelect = policy.rules.length > 1 ? [h("label", { for: "rule" }, "Kind of question"),
      h("select", { id: "rule", onchange: (e) => {
        chosen.rule = policy.rules.find((r) => r.name === e.target.value); build(); } },
      policy.rules.map((r) => h("option", { value: r.name, selected: r === rule }, r.name)))]
      : [];
    const kinds = kindChoice();
    const route = chosen.kind === "routes" ? routeOf(fields, rule) : null;
    const dims = route ? h("p", { id: "route-stages" }, h("strong", {}, "Route: "),
      route.join(" → "))
      : h("fieldset", { id: "dimensions" },
        h("legend", {}, `Group by (at most ${rule.max_dimensions})`),
        rule.dimensions.map((d) => h("label", { class: "check" },
          h("input", { type: "checkbox", name: "dimension", value: d, onchange: limitDims }),
          ` ${d}`)));
    const offered = route ? rule.measures.filter((m) => ROUTE_MEASURES.includes(m.function))
      : rule.measures;
    const measures = h("fieldset", { id: "measures" }, h("legend", {}, "Measures"),
      offered.map((m, i) => h("label", { class: "check" },
        h("input", { type: "checkbox", name: "measure", value: measureKey(m), checked: i === 0,
          onchange: changed }),
        ` ${m.field ? `${m.function} of ${m.field}` : m.function}`)));
    const filters = h("fieldset", { id: "filters" }, h("legend", {}, "Filters"),
      rule.filters.length ? rule.filters.map(filterInput)
        : h("p", { class: "muted" }, "This rule allows no filter."));
    const output = h("output", { id: "cost-value", for: "cost" });
    const slider = h("input", { type: "range", id: "cost", min: 0, step: 1, oninput: () => {
      cost.mode = "chosen";
      cost.index = Number(slider.value);
      cost.mark = "";
      showCost();
      changed();
    } });
    Object.assign(cost, { mode: "recommended", stops: costStops(policy.per_query),
      index: DEFAULT_STOP, mark: "" });
    fill(form,
      h("h2", { id: "q-h" }, "Your question"),
      h("label", { for: "dataset" }, "Dataset"), datasetSelect, ...ruleSelect, kinds,
      dims, measures, filters,
      h("label", { for: "cost" }, "Privacy cost: more cost, less noise"), slider, " ", output,
      h("div", { id: "cost-why", class: "why", "aria-live": "polite" }),
      h("p", {}, h("button", { type: "submit", id: "run" }, "Run the query (spends budget)")));
    showCost();
    changed();
  }

  function showCost() {
    const slider = form.querySelector("#cost");
    const stop = cost.stops[cost.index];
    slider.max = cost.stops.length - 1;
    slider.value = cost.index;
    slider.dataset.stops = JSON.stringify(cost.stops);
    slider.setAttribute("aria-valuetext", `${symbol(chosen.policy.accounting)} `
      + `${decimal(stop)}${cost.mark ? ` (${cost.mark})` : ""}`);
    fill(form.querySelector("#cost-value"), amount(stop, chosen.policy.accounting),
      cost.mark ? `, ${cost.mark}` : "");
  }

  function explain(text, status) {
    const why = form.querySelector("#cost-why");
    why.dataset.status = status;
    fill(why, h("p", {}, text), cost.mode === "chosen" ? h("button", { type: "button",
      class: "secondary", id: "use-recommended", onclick: () => {
        cost.mode = "recommended"; changed(); } }, "Use the recommended cost") : null);
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

  function chosenMeasures() {
    // the rule's measure objects ticked, in request order
    const keys = [...form.querySelectorAll("input[name=measure]:checked")].map((b) => b.value);
    return keys.map((k) => chosen.rule.measures.find((m) => measureKey(m) === k));
  }

  function question() {
    // The request without its cost.
    const filters = {};
    for (const el of form.querySelectorAll("[data-filter]")) {
      const name = el.dataset.filter;
      if (el.tagName === "SELECT") {
        const codes = [...el.selectedOptions].map((o) => o.value);
        if (codes.length) filters[name] = codes;
      } else if (el.value) {
        filters[name] = { ...(filters[name] || {}),
          [el.name.endsWith(".from") ? "from" : "to"]: el.value };
      }
    }
    for (const [name, value] of Object.entries(filters)) {
      if (value.from && !value.to) filters[name] = { from: value.from, to: value.from };
      if (value.to && !value.from) filters[name] = { from: value.to, to: value.to };
    }
    const measures = chosenMeasures();
    const out = {
      dataset: chosen.policy.dataset,
      group_by: [...form.querySelectorAll("input[name=dimension]:checked")].map((b) => b.value),
      measures: measures.map((m) => measureBody(measureKey(m))),
      filters,
    };
    if (chosen.kind !== "cells") {
      const k = Number(form.querySelector("#top-k").value) || TOP_K;
      out.top = { k, by: Math.max(mainMeasure(measures, chosen.policy), 0) };
    }
    if (chosen.kind === "routes") out.route = true;
    return out;
  }

  function changed() {
    clearTimeout(timer);
    armed = true;
    timer = setTimeout(() => { armed = false; pending = estimate(); }, 250);
  }

  async function settle() {
    // The estimate of the question as it stands (and so its cost), before running it.
    if (armed) {
      clearTimeout(timer);
      armed = false;
      pending = estimate();
    }
    await pending;
  }

  async function recommend(q) {
    // The cost of a meaningful view, or the largest affordable stop, and why: a decision the
    // caller applies only if the question has not changed meanwhile.
    const { policy } = chosen;
    const base = costStops(policy.per_query);
    const goal = targetFor(chosenMeasures(), policy, Boolean(q.top));
    if (!goal) {
      return { stops: base, index: DEFAULT_STOP, mark: "", status: "none",
        text: ["No accuracy target applies to a mean or a median (their error depends on the "
          + "data): the default cost is ", costOf(base[DEFAULT_STOP], policy),
        "; more cost, less noise."] };
    }
    let proposed = null;
    let needed = null;
    let canSpend = null;
    try {
      const e = await api("/v1/queries/estimate", { method: "POST",
        json: { ...q, target: goal.target } });
      proposed = e.cost.amount;
      canSpend = e.budget.can_spend;
    } catch (error) {
      if (!error.body || error.body.rule !== "budget:per_query") throw error;
      needed = error.body.requested;
      canSpend = (await api(`/v1/budgets/${q.dataset}`)).can_spend;
    }
    if (proposed !== null && compare(proposed, canSpend) <= 0) {
      return { ...withStop(base, proposed), mark: "recommended", status: "recommended",
        text: ["Recommended cost ", costOf(proposed, policy), `: the least that ${goal.goal}. `
          + "It fits what you can spend on one query now (", costOf(canSpend, policy), ")."] };
    }
    const index = affordable(base, canSpend);
    return { stops: base, index: Math.max(index, 0), status: "noisier",
      mark: index >= 0 ? "largest affordable" : "",
      text: [`A view that ${goal.goal} would cost `, costOf(proposed ?? needed, policy),
        ", more than you can spend on one query now (", costOf(canSpend, policy), "). ",
        index >= 0 ? ["The largest affordable cost, ", costOf(base[index], policy), ", is used "
          + "instead: this view will be noisier than that (expected error below)."]
          : "Nothing can be spent on this dataset now."] };
  }

  async function estimate() {
    const mine = ++asked;
    const heading = h("h2", { id: "e-h" }, "Before you spend");
    const q = question();
    estimateBox.setAttribute("aria-busy", "true");
    try {
      if (!q.measures.length) {
        fill(estimateBox, heading, h("p", { class: "empty" }, "Choose a measure."));
        form.querySelector("#run").disabled = true;
        return;
      }
      const decided = cost.mode === "recommended" ? await recommend(q) : null;
      if (mine !== asked) return;
      if (decided) {
        const { text, status, ...slider } = decided;
        Object.assign(cost, slider);
        showCost();
        explain(text, status);
      } else {
        explain("You chose this cost with the slider.", "chosen");
      }
      const e = await api("/v1/queries/estimate", { method: "POST",
        json: { ...q, cost: cost.stops[cost.index] } });
      if (mine !== asked) return;
      showEstimate(heading, e);
    } catch (error) {
      if (mine !== asked) return;
      fill(estimateBox, heading, problemBox(error));
      form.querySelector("#run").disabled = true;
    } finally {
      if (mine === asked) estimateBox.setAttribute("aria-busy", "false");
    }
  }

  function showEstimate(heading, e) {
    const refused = e.would_be_refused;
    const keys = e.keys || {};
    fill(estimateBox, heading,
      h("p", { id: "estimate-cost" }, "Cost ", amount(e.cost.amount, e.accounting
        || e.cost.measure), e.cost.delta && e.cost.delta !== "0"
        ? [", delta ", amount(e.cost.delta)] : "",
      `, ${e.cells.toLocaleString("en")} possible cells; nothing is spent by this estimate.`),
      h("table", { id: "expected" }, h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Measure"), h("th", { scope: "col" }, "Expected error (95%)"))),
      h("tbody", {}, e.measures.map((m) => h("tr", {}, h("th", { scope: "row" }, m.name),
        h("td", { class: "num" }, m.halfwidth_95 === null ? "depends on the data"
          : `± ${fmt(m.halfwidth_95)}`))))),
      keys.mode === "selected" ? h("p", { id: "estimate-keys" }, h("strong", {},
        "Selected keys: "), `only keys with enough distinct units are listed; ${keys.absent}.`)
        : null,
      e.top ? h("p", { id: "estimate-top" }, h("strong", {}, "Ranking: "),
        `two keys ${fmt(e.top.gap_90)} apart by ${e.top.by} are put in the right order with `
          + `${Math.round((e.top.rank_confidence || 0.9) * 100)}% probability.`) : null,
      h("p", { id: "budget-after" }, e.reused
        ? "You asked this before: the stored answer is returned free."
        : ["Your organisation's budget left after it: ", amount(e.budget_after.member_left),
          " (all members: ", amount(e.budget_after.global_left), ")."]),
      refused ? problemBox({ message: refused.detail, body: { rule: refused.rule } }) : null);
    form.querySelector("#run").disabled = Boolean(refused);
  }

  async function run() {
    const button = form.querySelector("#run");
    button.disabled = true;
    fill(resultBox, h("p", { class: "muted" }, "Running…"));
    besideSection.hidden = true;
    try {
      await settle();
      const asked = question();
      const result = await api("/v1/queries", { method: "POST",
        json: { ...asked, cost: cost.stops[cost.index] } });
      await showResult(result);
      besideBox(besideSection, result, asked, policies, { fieldsFor, asked: history });
    } catch (error) {
      fill(resultBox, problemBox(error));
    }
    button.disabled = false;
    changed();
    history();
  }

  const fieldsOf = { };

  async function fieldsFor(dataset) {
    fieldsOf[dataset] = fieldsOf[dataset] || await contractFields(dataset);
    return fieldsOf[dataset];
  }

  async function showResult(result) {
    // a published release may be of another dataset than the one being edited
    besideSection.hidden = true;
    await showAnswer(resultBox, result, await fieldsFor(result.dataset));
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
        h("td", { class: "num" }, amount(e.cost.amount, e.cost.measure)),
        h("td", {}, e.status),
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
