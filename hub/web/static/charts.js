// The fitting picture of a query result, as a Vega-Lite specification built from the cells
// the hub returned (never from anything else):
//   one country dimension          -> a world choropleth
//   two country dimensions         -> an origin -> destination flow matrix
//   one period dimension           -> a line with its 95% interval as a band
//   anything else                  -> bars with their 95% intervals
// Colours: viridis, readable by colour-blind readers; every mark has a tooltip.

const COUNTRY = "iso3166_alpha2";
const TOP = 30;

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
  if (dims.length === 1 && isCountry(dims[0])) return "map";
  if (dims.length === 2 && dims.every(isCountry)) return "flow";
  if (dims.length === 1 && fields[dims[0]] && fields[dims[0]].type === "period") return "line";
  return "bars";
}

function flat(result, measure) {
  // One record per cell: its keys, value and interval (null keys shown as "unknown").
  return result.rows.map((row) => {
    const cell = row[measure] || {};
    const out = { value: cell.value, low: cell.low ?? cell.value, high: cell.high ?? cell.value };
    for (const d of result.dimensions) out[d] = row[d] === null ? "(unknown)" : row[d];
    out.label = result.dimensions.map((d) => out[d]).join(" / ") || "all";
    return out;
  });
}

const tooltip = (dims) => [...dims.map((d) => ({ field: d, type: "nominal" })),
  { field: "value", type: "quantitative", title: "value" },
  { field: "low", type: "quantitative", title: "95% low" },
  { field: "high", type: "quantitative", title: "95% high" }];

export async function chartSpec(result, fields, measure) {
  const kind = chartKind(result, fields);
  const values = flat(result, measure);
  const dims = result.dimensions;
  const base = { $schema: "https://vega.github.io/schema/vega-lite/v6.json", width: "container",
    description: `${measure} by ${dims.join(" and ") || "nothing"}`, config: { view: { stroke: null } } };
  if (kind === "map") {
    const ids = await countryIds();
    const byId = values.filter((v) => ids[v[dims[0]]]).map((v) => ({ ...v, id: ids[v[dims[0]]] }));
    return { kind, values: byId, spec: { ...base, height: 420,
      projection: { type: "equalEarth" },
      layer: [
        { data: { url: "/ui/vendor/countries-110m.json",
          format: { type: "topojson", feature: "countries" } },
          mark: { type: "geoshape", fill: "#e6e6e6", stroke: "#fff", strokeWidth: 0.5 } },
        { data: { url: "/ui/vendor/countries-110m.json",
          format: { type: "topojson", feature: "countries" } },
          transform: [{ lookup: "id", from: { data: { values: byId }, key: "id",
            fields: [dims[0], "value", "low", "high"] } },
          { filter: "isValid(datum.value)" }],
          mark: { type: "geoshape", stroke: "#fff", strokeWidth: 0.5 },
          encoding: { color: { field: "value", type: "quantitative", title: measure,
            scale: { scheme: "viridis" } }, tooltip: tooltip(dims) } },
      ] } };
  }
  if (kind === "flow") {
    const [from, to] = dims;
    const total = (key) => Object.entries(values.reduce((acc, v) => {
      acc[v[key]] = (acc[v[key]] || 0) + Math.max(0, v.value || 0); return acc;
    }, {})).filter(([, t]) => t > 0).sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k]) => k);
    const froms = total(from);
    const tos = total(to);
    const kept = values.filter((v) => froms.includes(v[from]) && tos.includes(v[to]));
    return { kind, values: kept, spec: { ...base, height: { step: 22 },
      width: { step: 26 }, data: { values: kept },
      title: `${from} → ${to}: the 15 largest of each`,
      mark: { type: "rect", tooltip: true },
      encoding: {
        y: { field: from, type: "nominal", sort: froms, title: `${from} (from)` },
        x: { field: to, type: "nominal", sort: tos, title: `${to} (to)`,
          axis: { orient: "top", labelAngle: 0 } },
        color: { field: "value", type: "quantitative", title: measure,
          scale: { scheme: "viridis" } },
        tooltip: tooltip(dims) } } };
  }
  if (kind === "line") {
    const d = dims[0];
    const x = { field: d, type: "ordinal", title: d, sort: null };
    return { kind, values, spec: { ...base, height: 320, data: { values },
      layer: [
        { mark: { type: "area", opacity: 0.3, color: "#56b4e9" },
          encoding: { x, y: { field: "low", type: "quantitative", title: measure },
            y2: { field: "high" }, tooltip: tooltip(dims) } },
        { mark: { type: "line", point: true, color: "#0072b2" },
          encoding: { x, y: { field: "value", type: "quantitative" },
            tooltip: tooltip(dims) } },
      ] } };
  }
  const top = [...values].sort((a, b) => (b.value || 0) - (a.value || 0)).slice(0, TOP);
  const y = { field: "label", type: "nominal", sort: "-x", title: dims.join(" / ") || "all" };
  return { kind, values: top, spec: { ...base, height: { step: 20 }, data: { values: top },
    title: values.length > TOP ? `the ${TOP} largest of ${values.length} cells` : undefined,
    layer: [
      { mark: { type: "bar", color: "#0072b2" },
        encoding: { y, x: { field: "value", type: "quantitative", title: measure },
          tooltip: tooltip(dims) } },
      { mark: { type: "rule", color: "#e69f00" },
        encoding: { y, x: { field: "low", type: "quantitative" }, x2: { field: "high" } } },
    ] } };
}

export async function draw(element, result, fields, measure) {
  // Draws the chart into element (SVG, so that its marks are in the page's accessibility
  // tree); returns the records it was drawn from.
  const { kind, values, spec } = await chartSpec(result, fields, measure);
  element.replaceChildren();
  element.dataset.kind = kind;
  await window.vegaEmbed(element, spec, { renderer: "svg", actions: false });
  return { kind, values };
}
