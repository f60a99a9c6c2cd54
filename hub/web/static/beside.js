// Set an answer beside the same question asked of another dataset: the incidents the hub
// collected from news and crowd reports beside members' case records (routes, hotspots,
// trends), or any two datasets whose policies allow the same dimensions. Each answer keeps
// its own noise, privacy unit and budget: they are shown side by side, never added up.
//
// API: POST /v1/queries (the second question, with the accuracy target of accuracy.js, or
// what can be spent when that costs more), GET /v1/budgets/{dataset}.

import { targetFor } from "./accuracy.js";
import { amount } from "./amounts.js";
import { cellText } from "./answer.js";
import { api } from "./api.js";
import { NOT_DISTINGUISHABLE, keyLabel, ordered, ranked, uncertain } from "./cells.js";
import { draw } from "./charts.js";
import { fill, h, problemBox } from "./dom.js";

const ADDITIVE = ["count", "count_units", "linked_units"];

function ruleFor(policy, question, dims) {
  // The first rule of ``policy`` that allows the answer's dimensions ``dims`` (a route's
  // stages), with the measure to ask: the same function if allowed, else distinct units,
  // else rows.
  const first = question.measures[0];
  const wanted = [typeof first === "string" ? first : first.function, "count_units", "count"];
  for (const rule of policy.rules) {
    if (dims.length > rule.max_dimensions) continue;
    if (!dims.every((d) => rule.dimensions.includes(d))) continue;
    if (question.top && (rule.max_top_k ?? 0) < question.top.k) continue;
    const allowed = rule.measures.filter((m) => !m.field && ADDITIVE.includes(m.function));
    const measure = wanted.map((w) => allowed.find((m) => m.function === w)).find(Boolean);
    if (measure && (!question.route || measure.function !== "count")) return { rule, measure };
  }
  return null;
}

function besideChoices(question, dims, policies) {
  // The other datasets the question can be asked of: [{policy, rule, measure}].
  if (!question || !question.measures.length) return [];
  return policies.filter((p) => p.dataset !== question.dataset)
    .map((policy) => ({ policy, ...ruleFor(policy, question, dims) }))
    .filter((c) => c.rule);
}

function secondQuestion(question, dims, choice) {
  // The same question for choice.policy: filters its rule does not allow are left out.
  const filters = {};
  const dropped = [];
  for (const [name, value] of Object.entries(question.filters || {})) {
    if (choice.rule.filters.includes(name)) filters[name] = value;
    else dropped.push(name);
  }
  const out = { dataset: choice.policy.dataset, group_by: dims,
    measures: [choice.measure.function], filters };
  if (question.top) out.top = { k: question.top.k, by: 0 };
  if (question.route) out.route = true;
  return { body: out, dropped };
}

async function ask(body, policy) {
  // The answer at the cost of a meaningful view (accuracy.js), or at what can be spent on
  // one query now when that view costs more.
  const goal = targetFor([{ function: body.measures[0] }], policy, Boolean(body.top));
  try {
    return await api("/v1/queries", { method: "POST", json: { ...body, target: goal.target } });
  } catch (error) {
    if (!error.body || error.body.rule !== "budget:per_query") throw error;
    const budget = await api(`/v1/budgets/${body.dataset}`);
    return api("/v1/queries", { method: "POST", json: { ...body, cost: budget.can_spend } });
  }
}

function measureOf(result) {
  return ranked(result) ? result.top.by : result.measures[0].name;
}

function table(first, second) {
  // One row per key of either answer, in the first answer's order, then the second's.
  const [a, b] = [measureOf(first), measureOf(second)];
  const key = (result, row) => JSON.stringify(result.dimensions.map((d) => row[d]));
  const others = new Map(second.rows.map((row) => [key(second, row), row]));
  const rows = ordered(first, a).map((row) => [row, others.get(key(first, row))]);
  const seen = new Set(first.rows.map((row) => key(first, row)));
  rows.push(...ordered(second, b).filter((row) => !seen.has(key(second, row)))
    .map((row) => [null, row]));
  const td = (cell) => h("td", { class: uncertain(cell || {}) ? "num uncertain" : "num" },
    cell ? cellText(cell) : "not listed", uncertain(cell || {}) ? h("span", { class: "tag" }, NOT_DISTINGUISHABLE)
      : null);
  return h("table", { id: "beside-table" },
    h("caption", { class: "muted" }, "Every key of either answer: the first answer's order, "
      + "then keys only the second lists."),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, first.route ? "Route" : first.dimensions.join(" / ")),
      h("th", { scope: "col" }, `${first.dataset}: ${a}`),
      h("th", { scope: "col" }, `${second.dataset}: ${b}`))),
    h("tbody", {}, rows.map(([x, y]) => h("tr", { "data-key": keyLabel(first, x || y) },
      h("th", { scope: "row" }, keyLabel(first, x || y)),
      td(x && x[a]), td(y && y[b])))));
}

export function besideBox(box, first, question, policies, { fieldsFor, asked }) {
  // The "set beside" panel under an answer: choose a dataset, ask it, see both.
  // fieldsFor(dataset): the contract's fields (a promise); asked(): after a query ran.
  const choices = besideChoices(question, first.dimensions, policies);
  box.hidden = !choices.length;
  if (!choices.length) return;
  const select = h("select", { id: "beside-dataset" }, choices.map((c) =>
    h("option", { value: c.policy.dataset }, c.policy.dataset)));
  const out = h("div", { id: "beside-answer", "aria-live": "polite" });
  const button = h("button", { type: "button", id: "beside-run", onclick: async () => {
    const choice = choices.find((c) => c.policy.dataset === select.value);
    const { body, dropped } = secondQuestion(question, first.dimensions, choice);
    button.disabled = true;
    fill(out, h("p", { class: "muted" }, "Running…"));
    try {
      const second = await ask(body, choice.policy);
      const fields = await fieldsFor(second.dataset);
      const chart = h("div", { id: "beside-chart", class: "chart", role: "figure",
        "aria-label": `${second.dataset}: ${measureOf(second)}` });
      fill(out,
        h("p", { id: "beside-charged" }, `${second.dataset}: charged `,
          amount(second.charged.amount, second.accounting || second.charged.measure),
          second.exact ? " (an exact answer over public rows)" : "",
          `; asked with ${measureOf(second)}`,
          dropped.length ? `; left out the filters its policy does not allow: `
            + `${dropped.join(", ")}` : "", "."),
        h("p", { class: "note" }, h("strong", {}, "Side by side, never added: "),
          `each answer has its own noise, privacy unit and budget (${first.dataset} and `
            + `${second.dataset} count different things), so compare their patterns.`),
        h("div", { class: "scroll" }, table(first, second)),
        h("h3", {}, `${second.dataset}: ${measureOf(second)}`), chart);
      await draw(chart, second, fields, measureOf(second));
    } catch (error) {
      fill(out, problemBox(error));
    }
    button.disabled = false;
    asked();
  } }, "Ask it the same question (spends its budget)");
  fill(box, h("h2", { id: "beside-h" }, "Set beside another dataset"),
    h("p", { class: "muted" }, "The same question asked of another dataset your policies "
      + "allow, shown beside this answer: for example the incidents collected from news and "
      + "crowd reports beside members' case records."),
    h("label", { for: "beside-dataset" }, "Dataset"), select, " ", button, out);
}
