// The cells of a released answer, read honestly (shared by the answer's lists and its charts).
//
// Every additive cell the hub releases is {value, low, high, distinguishable}: the 95%
// interval, and whether it excludes zero. A cell whose interval includes zero is "not
// distinguishable from zero": it stays in tables and downloads, is left out of top lists and
// colour scales unless the reader asks for it, and is drawn faded. Nothing is ever ordered by
// its raw noisy value: a ranked answer keeps the order of OpenDP's noisy top-k (the hub's row
// order), anything else is ordered by the lower end of the interval.

export const NOT_DISTINGUISHABLE = "not distinguishable from zero";

export function uncertain(cell) {
  // Only additive cells carry the flag; a mean's or a median's cell makes no such claim.
  return Boolean(cell) && cell.distinguishable === false;
}

export function keyLabel(result, row) {
  const parts = result.dimensions.map((d) => (row[d] === null || row[d] === undefined
    ? "(unknown)" : String(row[d])));
  if (!parts.length) return "all";
  return parts.join(result.route ? " → " : " / ");
}

export function rankText(rank) {
  return `rank ${rank.position} (${rank.low}-${rank.high}, ${Math.round(rank.confidence * 100)}%)`;
}

export function ranked(result) {
  return Boolean(result.top);
}

function lower(row, measure) {
  const cell = row[measure] || {};
  return cell.low ?? cell.value ?? -Infinity;
}

export function ordered(result, measure) {
  // Rows in the honest order: the hub's rank order for a ranked answer, else by the lower end
  // of the interval of ``measure``, largest first (ties keep the hub's order).
  if (ranked(result)) return [...result.rows];
  return result.rows.map((row, i) => [row, i])
    .sort(([a, i], [b, j]) => (lower(b, measure) - lower(a, measure)) || i - j)
    .map(([row]) => row);
}

export function topList(result, measure, { showUncertain = false, limit = 10 } = {}) {
  // The largest cells: ranked rows, or the cells of highest lower bound; cells not
  // distinguishable from zero only when asked for.
  const by = ranked(result) ? result.top.by : measure;
  const rows = ordered(result, by).filter((row) => showUncertain || !uncertain(row[by]));
  return ranked(result) ? rows : rows.slice(0, limit);
}

export function fmt(x) {
  if (x === null || x === undefined) return "";
  return Math.abs(x) >= 1000 ? Math.round(x).toLocaleString("en")
    : String(Math.round(x * 100) / 100);
}
