// The partner page: your organisation's extracts with the hub's validation report and row
// counts, withdrawing one, how your datasets are used (shapes and costs, never values), and
// how to configure the connector with your client id.
//
// API: GET /v1/extracts, DELETE /v1/extracts/{id}, GET /v1/clients, GET /v1/audit/usage,
// GET /v1/contracts, GET /v1/directory (names: the people of other organisations are shown
// as their organisation, names.js).

import { sizeText } from "./amounts.js";
import { api } from "./api.js";
import { details as entryDetails, sentence } from "./auditlog.js";
import { fill, h, problemBox } from "./dom.js";
import { names as loadNames } from "./names.js";

export async function show({ render }) {
  const extractsBox = h("section", { class: "panel", "aria-labelledby": "x-h" });
  const usageBox = h("section", { class: "panel", "aria-labelledby": "u-h" });
  const connectorBox = h("section", { class: "panel", "aria-labelledby": "c-h" });
  render("Partner uploads", extractsBox, usageBox, connectorBox);

  async function extracts() {
    const list = await api("/v1/extracts?include_withdrawn=true");
    const withdraw = (x) => async () => {
      if (!window.confirm(`Withdraw ${x.id} (${x.rows} rows of ${x.dataset})? Queries stop `
        + "using it at once; budgets already spent stay spent.")) return;
      try {
        await api(`/v1/extracts/${x.id}`, { method: "DELETE" });
        await extracts();
      } catch (error) {
        extractsBox.append(problemBox(error));
      }
    };
    fill(extractsBox, h("h2", { id: "x-h" }, "Your extracts"),
      list.length ? h("table", { id: "extracts" }, h("thead", {}, h("tr", {},
        ["Extract", "Dataset", "Rows", "Size", "Checked by the hub", "Status", ""].map((t) =>
          h("th", { scope: "col" }, t)))),
      h("tbody", {}, list.map((x) => h("tr", { "data-extract": x.id },
        h("th", { scope: "row" }, x.id),
        h("td", {}, `${x.dataset} v${x.contract_version}`),
        h("td", { class: "num" }, x.rows.toLocaleString("en")),
        h("td", { class: "num" }, sizeText(x.size)),
        h("td", {}, h("details", {}, h("summary", {}, `all ${x.report.rows.toLocaleString("en")}`
          + " rows valid"), h("dl", {},
          h("dt", {}, "Columns"), h("dd", {}, (x.report.columns || []).join(", ")),
          h("dt", {}, "Network key id"), h("dd", {}, x.key_id),
          h("dt", {}, "Connector"), h("dd", {}, x.report.connector_version || "unknown"),
          h("dt", {}, "Checked at"), h("dd", {}, x.report.checked_at)))),
        h("td", {}, x.status === "withdrawn" ? `withdrawn ${x.withdrawn_at}` : "visible"),
        h("td", {}, x.status === "visible" ? h("button", { type: "button",
          class: "secondary", onclick: withdraw(x) }, `Withdraw ${x.id}`) : "")))))
        : h("p", { class: "empty" }, "Your organisation has no extract on the hub yet: push "
          + "one with the connector (below)."));
  }

  async function usage() {
    try {
      const [page, names] = await Promise.all([api("/v1/audit/usage?limit=50"),
        loadNames()]);
      fill(usageBox, h("h2", { id: "u-h" }, "How your datasets are used"),
        h("p", { class: "muted" }, "Every query over a dataset you contribute to: who asked "
          + "what shape, at what cost. Never the values."),
        page.entries.length ? h("table", { id: "usage" }, h("thead", {}, h("tr", {},
          ["When", "What happened"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, page.entries.map((e) => h("tr", { "data-action": e.action },
          h("td", {}, e.at),
          h("td", { class: "details" }, sentence(e, names), entryDetails(e, names))))))
          : h("p", { class: "empty" }, "No query has touched your datasets yet."));
    } catch (error) {
      fill(usageBox, h("h2", { id: "u-h" }, "How your datasets are used"), problemBox(error));
    }
  }

  async function connector() {
    const [clients, contracts] = await Promise.all([api("/v1/clients"), api("/v1/contracts")]);
    const partners = clients.filter((c) => c.roles.includes("partner") && !c.revoked_at);
    const id = partners.length ? partners[0].client_id : "<your partner client id>";
    const dataset = contracts.length ? contracts[0].dataset : "bank_alerts";
    const script = [
      `export TAHUB_HUB_URL=${location.origin}`,
      `export TAHUB_CLIENT_ID=${id}`,
      "export TAHUB_CLIENT_SECRET=...        # shown once when the client was created",
      "export TAHUB_NETWORK_KEY_FILE=/secure/network.key   # shared by partners, never the hub",
      "",
      `tahub-connect mapping template --dataset ${dataset} > export.mapping.yaml`,
      "tahub-connect push export.csv --mapping export.mapping.yaml --dry-run",
      "tahub-connect push export.csv --mapping export.mapping.yaml",
    ].join("\n");
    fill(connectorBox, h("h2", { id: "c-h" }, "Configure the connector"),
      h("p", {}, "Your systems upload through the connector (",
        h("code", {}, "pip install tahub-0.1.0-py3-none-any.whl"),
        ": the wheel your hub's operator gives you, as the README's \"Install\" says), which "
        + "checks every row against the contract and pseudonymises identifiers before anything "
        + "leaves your machine."),
      partners.length ? h("p", {}, "Your organisation's partner clients: ",
        partners.map((c) => h("code", { class: "client-id" }, c.client_id)).reduce(
          (acc, el, i) => (i ? [...acc, ", ", el] : [el]), []), ".")
        : h("p", { class: "empty" }, "Your organisation has no partner client: ask the hub's "
          + "administrator (tahub admin client add ORG_ID --role partner)."),
      h("pre", { id: "connector-script", class: "diff" }, script),
      h("p", { class: "muted" }, `Datasets the hub accepts: ${contracts.map((c) =>
        `${c.dataset} v${c.version}`).join(", ")}.`));
  }

  await Promise.all([extracts(), usage(), connector()]);
}
