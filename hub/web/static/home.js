// Home: who you are, your organisation and roles, and per dataset what your organisation may
// ask and what it has left to spend (GET /v1/policies/mine, GET /v1/budgets); amounts as
// decimals, exact on hover (amounts.js).

import { amount } from "./amounts.js";
import { api } from "./api.js";
import { fill, h } from "./dom.js";

const ROLE_NAMES = {
  partner: "partner data engineer", analyst: "analyst",
  governance: "governance officer", admin: "hub administrator", reviewer: "reviewer",
};

function rulesCell(view) {
  return h("ul", { class: "plain" }, (view.rules || []).map((rule) => h("li", {},
    `${rule.name}: by ${rule.dimensions.join(", ") || "nothing"} (at most ${rule.max_dimensions}`
    + ` at once); ${rule.measures.map((m) => m.field ? `${m.function} of ${m.field}`
      : m.function).join(", ")}`)));
}

export async function show({ me, render }) {
  const [policies, budgets] = await Promise.all([api("/v1/policies/mine"), api("/v1/budgets")]);
  const byDataset = Object.fromEntries(budgets.map((b) => [b.dataset, b]));
  const roles = me.roles.map((r) => ROLE_NAMES[r] || r).join(", ") || "none";
  const who = h("section", { class: "panel", "aria-labelledby": "who-h" },
    h("h2", { id: "who-h" }, me.name || me.email || me.client_id),
    h("dl", {},
      h("dt", {}, "Organisation"), h("dd", { "data-testid": "org" }, me.org_name),
      h("dt", {}, "Roles"), h("dd", { "data-testid": "roles" }, roles),
      me.email ? [h("dt", {}, "E-mail"), h("dd", {}, me.email)] : null));
  let datasets;
  if (!policies.length) {
    datasets = h("p", { class: "empty" },
      "No sharing policy lets you query any dataset (deny by default). A governance officer "
      + "can propose a rule that names your organisation or your role.");
  } else {
    datasets = h("table", { "data-testid": "datasets" },
      h("caption", { class: "muted" }, "Budgets are exact and never renew by themselves."),
      h("thead", {}, h("tr", {}, ["Dataset", "What you may ask", "Per query",
        "Spent", "Left", "Partners needed"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, policies.map((view) => {
        const b = byDataset[view.dataset] || { member: {} };
        return h("tr", { "data-dataset": view.dataset },
          h("th", { scope: "row" }, view.dataset),
          h("td", {}, rulesCell(view)),
          h("td", { class: "num" }, amount(view.per_query, view.accounting)),
          h("td", { class: "num" }, amount(b.member.spent)),
          h("td", { class: "num", "data-testid": "left" }, amount(b.member.left)),
          h("td", { class: "num" }, view.min_partners));
      })));
  }
  render("Home", who, h("section", { "aria-labelledby": "ds-h" },
    h("h2", { id: "ds-h" }, "Datasets you may query"), datasets));
}
