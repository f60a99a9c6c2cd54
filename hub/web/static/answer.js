// A released answer, shown honestly: what was charged, how the keys were chosen (a selected
// key's absence explained), the ranking's confidence, the largest cells (never by raw noisy
// value), the picture with its intervals, the downloads and every cell in a table.
// Cells not distinguishable from zero are marked in the table and left out of the top list
// and of colour scales until the reader turns on "Show cells not distinguishable from zero".

import { amount } from "./amounts.js";
import { download } from "./api.js";
import {
  NOT_DISTINGUISHABLE, fmt, keyLabel, ordered, rankText, ranked, topList, uncertain,
} from "./cells.js";
import { chartKind, draw } from "./charts.js";
import { fill, h, problemBox } from "./dom.js";

const TABLE_ROWS = 200;
const TOP = 10;

function capital(text) { return text ? text[0].toUpperCase() + text.slice(1) : ""; }

function costText(cost, accounting) {
  // "rho 0.2" (the exact amount on hover), and its delta if any
  return [amount(cost.amount, accounting || cost.measure),
    cost.delta && cost.delta !== "0" ? [", delta ", amount(cost.delta)] : null];
}

function keysNote(result) {
  const keys = result.keys;
  if (!keys) return null;
  if (keys.mode === "selected") {
    const what = result.route ? "routes" : "keys";
    const absent = result.route ? keys.absent.replace(/^keys\b/, "routes") : keys.absent;
    return h("p", { id: "keys-note", class: "note" },
      h("strong", {}, `Selected ${what}: `),
      `${(keys.listed ?? result.rows.length).toLocaleString("en")} listed of `
        + `${result.cells.toLocaleString("en")} possible, chosen by the hub with a DP `
        + `threshold (about ${keys.threshold} distinct units). ${capital(absent)}.`);
  }
  return h("p", { id: "keys-note", class: "muted" }, `${capital(keys.absent)}.`);
}

export function cellText(cell) {
  if (!cell) return "";
  if (cell.low === undefined || cell.low === null) return fmt(cell.value);
  return `${fmt(cell.value)} (${fmt(cell.low)} to ${fmt(cell.high)})`;
}

function valueCell(cell) {
  const doubt = uncertain(cell);
  return h("td", { class: doubt ? "num uncertain" : "num" }, cellText(cell),
    doubt ? h("span", { class: "tag" }, NOT_DISTINGUISHABLE) : null);
}

function topTable(result, measure, showUncertain, names) {
  const rows = topList(result, measure, { showUncertain, limit: TOP });
  const by = ranked(result) ? result.top.by : measure;
  const hidden = ordered(result, by).filter((r) => uncertain(r[by])).length;
  const head = ranked(result)
    ? `Ranked by ${by} with OpenDP's noisy top-k: rank intervals hold together with `
      + `${Math.round(result.top.rank_confidence * 100)}% confidence.`
    : `The cells with the highest lower end of the 95% interval of ${measure} (at most `
      + `${TOP}).`;
  const left = !showUncertain && hidden
    ? ` ${hidden} cell(s) not distinguishable from zero are left out.` : "";
  if (!rows.length) {
    return h("p", { id: "top-list", class: "empty" },
      `${head} No cell is distinguishable from zero.${left}`);
  }
  return h("table", { id: "top-list" },
    h("caption", { class: "muted" }, head + left),
    h("thead", {}, h("tr", {},
      ranked(result) ? h("th", { scope: "col" }, "Rank (90%)") : null,
      h("th", { scope: "col" }, result.route ? "Route" : result.dimensions.join(" / ")),
      names.map((n) => h("th", { scope: "col" }, `${n} (95% interval)`)))),
    h("tbody", {}, rows.map((row) => h("tr", { "data-key": keyLabel(result, row),
      class: uncertain(row[by]) ? "uncertain" : null },
    row.rank ? h("td", { class: "rank" }, rankText(row.rank)) : null,
    h("th", { scope: "row" }, keyLabel(result, row)),
    names.map((n) => valueCell(row[n]))))));
}

function cellsTable(result, names) {
  const first = ranked(result) ? result.top.by : names[0];
  const rows = ordered(result, first);
  const doubtful = rows.filter((r) => names.some((n) => uncertain(r[n]))).length;
  return h("table", { id: "cells" },
    h("caption", { class: "muted" }, `${result.rows.length.toLocaleString("en")} cells`
      + (ranked(result) ? ", in rank order" : `, ordered by the lower end of the 95% interval `
        + `of ${first}`)
      + (rows.length > TABLE_ROWS ? `; the first ${TABLE_ROWS} shown, all in the download` : "")
      + (doubtful ? `; ${doubtful} with a value ${NOT_DISTINGUISHABLE} (kept, marked)` : "")),
    h("thead", {}, h("tr", {}, [...result.dimensions, ...names.flatMap((n) =>
      [n, `${n} 95% low`, `${n} 95% high`])].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.slice(0, TABLE_ROWS).map((row) => h("tr", {},
      result.dimensions.map((d) => h("td", {}, row[d] ?? "(unknown)")),
      names.flatMap((n) => {
        const cell = row[n] || {};
        const doubt = uncertain(cell);
        return [h("td", { class: doubt ? "num uncertain" : "num" }, fmt(cell.value),
          doubt ? h("span", { class: "tag" }, NOT_DISTINGUISHABLE) : null),
        ...[cell.low, cell.high].map((v) => h("td", { class: doubt ? "num uncertain" : "num" },
          v === undefined ? "" : fmt(v)))];
      })))));
}

export async function showAnswer(box, result, fields) {
  const names = result.measures.map((m) => m.name);
  const state = { measure: ranked(result) ? result.top.by : names[0], showUncertain: false };
  const chart = h("div", { id: "chart", class: "chart", role: "figure",
    "aria-label": `${state.measure} by ${result.dimensions.join(" and ") || "nothing"}` });
  const topBox = h("div", { id: "top-box" });
  const redraw = async () => {
    if (result.dimensions.length && chartKind(result, fields) !== "line") { // a trend: its line
      fill(topBox, h("h3", {}, result.route ? "Largest routes" : "Largest"),
        h("div", { class: "scroll" }, topTable(result, state.measure, state.showUncertain,
          names)));
    }
    await draw(chart, result, fields, state.measure, { showUncertain: state.showUncertain });
  };
  const pick = names.length > 1 ? h("select", { id: "chart-measure", onchange: (e) => {
    state.measure = e.target.value; redraw(); } },
  names.map((n) => h("option", { value: n, selected: n === state.measure }, n))) : null;
  const doubtful = result.rows.filter((r) => names.some((n) => uncertain(r[n]))).length;
  const toggle = h("input", { type: "checkbox", id: "show-uncertain", onchange: (e) => {
    state.showUncertain = e.target.checked; redraw(); } });
  const path = result.publication ? `/v1/releases/${result.publication.id}`
    : `/v1/queries/${result.query_id}`;
  const link = (format) => h("button", { type: "button", class: "secondary",
    id: `download-${format}`, onclick: () => download(`${path}/export?format=${format}`,
      `${result.query_id}.${format}`).catch((error) => box.prepend(problemBox(error))) },
  `Download ${format.toUpperCase()}`);
  fill(box,
    h("h2", { id: "r-h" }, `Answer: ${result.dataset}`),
    h("p", { id: "charged" }, result.reused ? "Returned again from your stored releases: free."
      : ["Charged ", costText(result.charged, result.accounting), "; your organisation has ",
        amount(result.budget.member.left), " left."]),
    result.exact ? h("p", { id: "exact-note", class: "note" }, h("strong", {}, "Exact: "),
      `the filters keep only public rows (${result.exact.reason}): no noise was added, `
        + "nothing was charged, and each value is the true one.") : null,
    keysNote(result),
    result.top ? h("p", { id: "top-note", class: "note" }, h("strong", {}, "Ranked: "),
      `the ${result.top.k} largest by ${result.top.by}. ${capital(result.top.note)}.`) : null,
    result.route ? h("p", { id: "route-note", class: "muted" },
      `Route: ${result.route.stages.join(" → ")}. ${capital(result.route.assembly)}.`) : null,
    h("p", { class: "muted" }, capital(result.bounding.note), "."),
    h("p", { class: "toggle" }, h("label", { class: "check", for: "show-uncertain" }, toggle,
      " Show cells not distinguishable from zero"),
    h("span", { class: "muted", id: "uncertain-count" }, ` (${doubtful.toLocaleString("en")} of `
      + `${result.rows.length.toLocaleString("en")} cells: `
      + (result.exact ? "zero" : "their 95% interval includes zero")
      + "; they stay in the table and the downloads)")),
    topBox,
    pick ? h("label", { for: "chart-measure" }, "Measure shown") : null, pick, chart,
    h("p", { class: "muted legend" }, h("span", { class: "swatch faded" }),
      " faded: not distinguishable from zero (off the colour scale unless shown)"),
    h("p", {}, link("csv"), " ", link("parquet")),
    h("div", { class: "scroll" }, cellsTable(result, names)));
  await redraw();
}
