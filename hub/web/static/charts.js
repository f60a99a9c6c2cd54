// The fitting picture of a query result, as a Vega-Lite specification built from the cells
// the hub returned (never from anything else), with their 95% intervals always drawn:
//   a ranked answer (top k, routes)  -> bars in rank order, with error bars
//   one country dimension            -> a world choropleth
//   two country dimensions           -> an origin -> destination flow matrix
//   one period dimension             -> a line with its 95% interval as a band, over the
//                                       data's months (not the contract's whole domain)
//   anything else                    -> bars ordered by their interval's lower end, error bars
// Cells not distinguishable from zero (cells.js) are drawn faded: on maps and matrices they
// are grey and off the colour scale unless ``showUncertain``, which puts them on it (still
// faded); they are left out of ranked bars and of bar lists cut to the largest.
// Colours: viridis and the Okabe-Ito palette, readable by colour-blind readers; every mark
// has a tooltip, and SVG puts each mark in the page's accessibility tree.

import { NOT_DISTINGUISHABLE, keyLabel, ordered, rankText, ranked, uncertain } from "./cells.js";

const COUNTRY = "iso3166_alpha2";
const TOP = 30; // bars drawn at most
const SIDE = 15; // rows and columns of a flow matrix
const FADED = 0.35; // opacity of a cell not distinguishable from zero
const GREY = "#b4b4b4"; // its fill when it is off the colour scale
const BLUE = "#0072b2";
const SKY = "#56b4e9";
const INK = "#000000";

let numeric = null; // ISO 3166-1 alpha-2 -> numeric (the ids of the world map's shapes)

async function countryIds() {
  if (!numeric) {
    const codes = await (await fetch("/ui/vendor/codes.json")).json();
    numeric = Object.fromEntries(codes.map(([alpha2, , num]) => [alpha2, num]));
  }
  return numeric;
}

export function chartKind(result, fields) {
  const dims = result.dimensions;
  const isCountry = (d) => fields[d] && fields[d].domain && fields[d].domain.ref === COUNTRY;
  if (ranked(result)) return "ranked";
  if (dims.length === 1 && isCountry(dims[0])) return "map";
  if (dims.length === 2 && dims.every(isCountry)) return "flow";
  if (dims.length === 1 && fields[dims[0]] && fields[dims[0]].type === "period") return "line";
  return "bars";
}

function flat(result, rows, measure) {
  // One record per cell: its keys, value, interval and whether it is told from zero.
  return rows.map((row) => {
    const cell = row[measure] || {};
    const out = { value: cell.value, low: cell.low ?? cell.value, high: cell.high ?? cell.value,
      uncertain: uncertain(cell),
      from_zero: cell.distinguishable === undefined ? "no interval"
        : cell.distinguishable ? "distinguishable" : NOT_DISTINGUISHABLE };
    for (const d of result.dimensions) out[d] = row[d] === null ? "(unknown)" : row[d];
    out.label = keyLabel(result, row);
    if (row.rank) {
      out.rank = rankText(row.rank);
      out.label = `${row.rank.position}. ${out.label}`;
    }
    return out;
  });
}

const tooltip = (dims, extra = []) => [...dims.map((d) => ({ field: d, type: "nominal" })),
  ...extra,
  { field: "value", type: "quantitative", title: "value", format: "," },
  { field: "low", type: "quantitative", title: "95% low", format: "," },
  { field: "high", type: "quantitative", title: "95% high", format: "," },
  { field: "from_zero", type: "nominal", title: "from zero" }];

const faded = { condition: { test: "datum.uncertain", value: FADED }, value: 1 };

function colour(measure) {
  return { field: "value", type: "quantitative", title: measure, scale: { scheme: "viridis" } };
}

function bars(base, values, dims, measure, { title, yTitle, extra = [] }) {
  // The keys' names can be long (routes): they head the chart instead of running down its side.
  const y = { field: "label", type: "nominal", sort: values.map((v) => v.label), title: null,
    axis: { labelLimit: 260 } };
  return { ...base, height: { step: 22 }, autosize: { type: "fit-x", contains: "padding" },
    data: { values }, title: { text: `${measure} by ${yTitle}`, subtitle: title },
    layer: [
      { mark: { type: "bar", color: BLUE },
        encoding: { y, x: { field: "value", type: "quantitative", title: measure },
          opacity: faded, tooltip: tooltip(dims, extra) } },
      { mark: { type: "errorbar", ticks: true, color: INK },
        encoding: { y, x: { field: "low", type: "quantitative", title: measure },
          x2: { field: "high" } } },
    ] };
}

function mapSpec(base, values, dims, measure, showUncertain) {
  const shapes = { url: "/ui/vendor/countries-110m.json",
    format: { type: "topojson", feature: "countries" } };
  const lookup = { lookup: "id", from: { data: { values }, key: "id",
    fields: [dims[0], "value", "low", "high", "uncertain", "from_zero"] } };
  const cells = (test, mark, encoding) => ({ data: shapes,
    transform: [lookup, { filter: `isValid(datum.value) && ${test}` }],
    mark: { type: "geoshape", stroke: "#fff", strokeWidth: 0.5, ...mark },
    encoding: { ...encoding, tooltip: tooltip(dims) } });
  return { ...base, height: 420, projection: { type: "equalEarth" },
    layer: [
      { data: shapes, mark: { type: "geoshape", fill: "#fbfbfb", stroke: "#c8c8c8",
        strokeWidth: 0.5 } }, // not in the answer (a key not selected)
      cells("datum.uncertain", { opacity: FADED, ...(showUncertain ? {} : { fill: GREY }) },
        showUncertain ? { color: colour(measure) } : {}),
      cells("!datum.uncertain", {}, { color: colour(measure) }),
    ] };
}

function flowSpec(base, values, dims, measure, showUncertain) {
  // Rows and columns: every key, ordered by its cells' highest lower bound, when there are
  // at most SIDE of each; else the SIDE keys of the cells of highest lower bound (a top list:
  // cells not distinguishable from zero count only when shown). Every returned cell at their
  // crossings is drawn.
  const [from, to] = dims;
  const sorted = [...values].sort((a, b) => b.low - a.low);
  const best = (key) => {
    const all = [...new Set(sorted.map((v) => v[key]))];
    if (all.length <= SIDE) return all;
    return [...new Set(sorted.filter((v) => showUncertain || !v.uncertain).map((v) => v[key]))]
      .slice(0, SIDE);
  };
  const froms = best(from);
  const tos = best(to);
  const cut = froms.length < new Set(values.map((v) => v[from])).size
    || tos.length < new Set(values.map((v) => v[to])).size;
  const kept = values.filter((v) => froms.includes(v[from]) && tos.includes(v[to]));
  const encoding = {
    y: { field: from, type: "nominal", sort: froms, title: null },
    x: { field: to, type: "nominal", sort: tos, title: null,
      axis: { orient: "top", labelAngle: 0 } },
    tooltip: tooltip(dims) };
  return { kept, spec: { ...base, height: { step: 22 }, width: { step: 26 }, autosize: "pad",
    data: { values: kept },
    title: { text: `${measure}: ${from} (rows) → ${to} (columns)`, anchor: "start",
      subtitle: cut ? `at most ${SIDE} of each: those with the largest cells by the lower end `
        + "of their 95% interval" : "each ordered by the lower end of the 95% interval of "
        + "its largest cell" },
    layer: [
      { transform: [{ filter: "datum.uncertain" }],
        mark: { type: "rect", opacity: FADED, ...(showUncertain ? {} : { fill: GREY }) },
        encoding: { ...encoding, ...(showUncertain ? { color: colour(measure) } : {}) } },
      { transform: [{ filter: "!datum.uncertain" }], mark: { type: "rect" },
        encoding: { ...encoding, color: colour(measure) } },
    ] } };
}

function months(first, last) {
  const out = [];
  let [y, m] = first.split("-").map(Number);
  const [ly, lm] = last.split("-").map(Number);
  while (y < ly || (y === ly && m <= lm)) {
    out.push(`${y}-${String(m).padStart(2, "0")}`);
    m += 1;
    if (m > 12) { y += 1; m = 1; }
  }
  return out;
}

export function trendSpan(result, fields, measure) {
  // The months a trend shows: all the returned months when a filter narrowed the period (they
  // are the filtered range), else from the first to the last month whose interval excludes
  // zero (all months when none does). Returns {from, to, why}.
  const d = result.dimensions[0];
  const rows = result.rows.filter((r) => r[d]).sort((a, b) => (a[d] < b[d] ? -1 : 1));
  if (!rows.length) return { from: null, to: null, why: "no month was returned" };
  const first = rows[0][d];
  const last = rows[rows.length - 1][d];
  const domain = (fields[d] && fields[d].domain) || {};
  const whole = months(String(domain.min || first), String(domain.max || last));
  if (rows.length < whole.length) {
    return { from: first, to: last, why: "the months asked for" };
  }
  // The hub's span uses intervals that hold together for all months (Bonferroni): per-month
  // 95% intervals would find a month of pure noise "distinguishable" in most long trends.
  const span = result.period_span;
  if (span && span.field === d && span.from) {
    return { from: span.from, to: span.to,
      why: "from the first to the last month where the data show something (intervals "
        + "that hold together for every month exclude zero)" };
  }
  if (span && span.field === d) {
    return { from: first, to: last,
      why: "every month: none is distinguishable from zero" };
  }
  const told = rows.filter((r) => !uncertain(r[measure]));  // a release made before spans
  if (!told.length) {
    return { from: first, to: last,
      why: "every month: none is distinguishable from zero" };
  }
  return { from: told[0][d], to: told[told.length - 1][d],
    why: "from the first to the last month distinguishable from zero" };
}

function lineSpec(base, result, fields, values, measure) {
  const d = result.dimensions[0];
  const span = trendSpan(result, fields, measure);
  const shown = values.filter((v) => v[d] !== "(unknown)" && v[d] >= span.from
    && v[d] <= span.to).sort((a, b) => (a[d] < b[d] ? -1 : 1))
    .map((v) => ({ ...v, month: `${v[d]}-01` }));
  const x = { field: "month", type: "temporal", timeUnit: "utcyearmonth", title: d,
    axis: { format: "%Y-%m", labelOverlap: true } };
  return { shown, span, spec: { ...base, height: 320, data: { values: shown },
    title: `${span.from} to ${span.to}: ${span.why}`,
    layer: [
      { mark: { type: "area", opacity: 0.3, color: SKY },
        encoding: { x, y: { field: "low", type: "quantitative", title: measure },
          y2: { field: "high" } } },
      { mark: { type: "line", color: BLUE }, encoding: { x, y: { field: "value",
        type: "quantitative" } } },
      { mark: { type: "point", filled: true, color: BLUE, size: 40 },
        encoding: { x, y: { field: "value", type: "quantitative" }, opacity: faded,
          tooltip: tooltip([d]) } },
    ] } };
}

export async function chartSpec(result, fields, measure, { showUncertain = false } = {}) {
  // {kind, values (the records drawn), spec}
  const kind = chartKind(result, fields);
  const dims = result.dimensions;
  const base = { $schema: "https://vega.github.io/schema/vega-lite/v6.json", width: "container",
    description: `${measure} by ${dims.join(" and ") || "nothing"}`,
    config: { view: { stroke: null } } };
  const all = flat(result, ordered(result, measure), measure);
  const hidden = all.filter((v) => v.uncertain).length;
  if (kind === "map") {
    const ids = await countryIds();
    const byId = all.filter((v) => ids[v[dims[0]]]).map((v) => ({ ...v, id: ids[v[dims[0]]] }));
    return { kind, values: byId, spec: mapSpec(base, byId, dims, measure, showUncertain) };
  }
  if (kind === "flow") {
    const { kept, spec } = flowSpec(base, all, dims, measure, showUncertain);
    return { kind, values: kept, spec };
  }
  if (kind === "line") {
    const { shown, spec } = lineSpec(base, result, fields, all, measure);
    return { kind, values: shown, spec };
  }
  if (kind === "ranked") {
    const by = result.top.by;
    const kept = flat(result, result.rows.filter((r) => showUncertain || !uncertain(r[by])),
      measure);
    return { kind, values: kept, spec: bars(base, kept, dims, measure, {
      title: `ranked by ${by} (OpenDP's noisy top-k), in rank order`,
      yTitle: dims.join(result.route ? " → " : " / "),
      extra: [{ field: "rank", type: "nominal", title: "rank" }] }) };
  }
  const cut = all.length > TOP;
  const kept = (cut ? all.filter((v) => showUncertain || !v.uncertain) : all).slice(0, TOP);
  const title = cut ? `the ${kept.length} of ${all.length} cells with the highest lower end of `
    + `their 95% interval${showUncertain || !hidden ? "" : `; ${hidden} not distinguishable `
    + "from zero left out"}` : "ordered by the lower end of their 95% interval";
  return { kind, values: kept,
    spec: bars(base, kept, dims, measure, { title, yTitle: dims.join(" / ") || "all" }) };
}

export async function draw(element, result, fields, measure, options = {}) {
  // Draws the chart into element (SVG, so that its marks are in the page's accessibility
  // tree); keeps the Vega view on element.vegaView; returns the records it was drawn from.
  const { kind, values, spec } = await chartSpec(result, fields, measure, options);
  element.replaceChildren();
  element.dataset.kind = kind;
  delete element.dataset.measure;
  if (!values.length) {
    element.vegaView = null;
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = result.rows.length ? "No cell to draw: none is distinguishable from "
      + "zero. Show them with the toggle above." : "The answer has no cell.";
    element.append(p);
    return { kind, values };
  }
  const embedded = await window.vegaEmbed(element, spec, { renderer: "svg", actions: false });
  element.vegaView = embedded.view;
  element.dataset.measure = measure; // drawn
  return { kind, values };
}
