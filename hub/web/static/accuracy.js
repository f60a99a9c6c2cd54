// Accuracy first: the cost the workspace proposes for a question, and why.
//
// A view is meaningful when its intervals are narrow next to what a few units can contribute:
//   cells (maps, matrices, trends, bars): a 95% half-width of HALFWIDTH_UNITS units' worth,
//     so that a cell to which five units contribute fully stands out from zero;
//   ranked views (top k, largest routes): two keys GAP_UNITS units' worth apart put in the
//     right order with probability CONFIDENCE (about half the units from which the shipped
//     policies list a selected key, 18 to 23).
// One unit's worth is the most one privacy unit can add to a cell: 1 for count_units and
// linked_units, the policy's max_rows for count, max_rows x the clamp for a sum.
// The hub solves for the least cost meeting the target (POST /v1/queries/estimate with
// "target", spends nothing); the workspace uses it when it fits what may be spent on one
// query now (budget.can_spend), else the largest affordable stop of the slider, and says so.
// Amounts are exact fractions ("n/d" strings), compared with BigInt, never as floats.

export const HALFWIDTH_UNITS = 5;
export const GAP_UNITS = 12;
export const CONFIDENCE = 0.9;

const SHARES = [[1n, 100n], [1n, 50n], [1n, 20n], [1n, 10n], [1n, 5n], [1n, 4n], [1n, 2n],
  [1n, 1n]];
export const DEFAULT_STOP = 3; // when no target applies (means and medians only)

const ADDITIVE = ["count", "sum", "count_units", "linked_units"];

function gcd(a, b) { return b ? gcd(b, a % b) : a; }

export function fraction(text) {
  // "1/5", "0.2" or "3" -> [numerator, denominator] as BigInt (exact, as the hub's amounts)
  const s = String(text).trim();
  if (s.includes("/")) {
    const [n, d] = s.split("/");
    return [BigInt(n), BigInt(d)];
  }
  const [whole, frac = ""] = s.split(".");
  const den = 10n ** BigInt(frac.length);
  return [BigInt(whole || "0") * den + BigInt(frac || "0"), den];
}

function text([n, d]) {
  const g = gcd(n, d);
  return d / g === 1n ? String(n / g) : `${n / g}/${d / g}`;
}

export function compare(a, b) {
  // -1, 0 or 1 as amount a is below, equal to or above amount b
  const [an, ad] = fraction(a);
  const [bn, bd] = fraction(b);
  const left = an * bd;
  const right = bn * ad;
  return left < right ? -1 : left > right ? 1 : 0;
}

export function stops(perQuery) {
  // The slider's stops: exact shares of the per-query cap, smallest first.
  const [n, d] = fraction(perQuery);
  return SHARES.map(([sn, sd]) => text([n * sn, d * sd]));
}

export function withStop(list, amount) {
  // The stops with ``amount`` among them (in order), and its index.
  const all = list.some((s) => compare(s, amount) === 0) ? [...list]
    : [...list, amount].sort(compare);
  return { stops: all, index: all.findIndex((s) => compare(s, amount) === 0) };
}

export function affordable(list, canSpend) {
  // The largest stop that can be spent now, or -1 when none can.
  let found = -1;
  list.forEach((s, i) => { if (compare(s, canSpend) <= 0) found = i; });
  return found;
}

function unitWorth(measure, policy) {
  // The most one unit can add to a cell of this measure (its sensitivity), or null.
  if (measure.function === "count_units" || measure.function === "linked_units") return 1;
  if (measure.function === "count") return policy.max_rows;
  if (measure.function === "sum" && measure.clamp) {
    return policy.max_rows * Math.max(...measure.clamp.map(Math.abs));
  }
  return null;
}

function named(measure) {
  return measure.field ? `${measure.function}_${measure.field}` : measure.function;
}

export function mainMeasure(measures, policy) {
  // The index of the measure a target applies to and a ranking ranks by: the first additive
  // one (count, sum, count_units, linked_units), or -1.
  return measures.findIndex((m) => ADDITIVE.includes(m.function)
    && unitWorth(m, policy) !== null);
}

export function targetFor(measures, policy, ranked) {
  // The accuracy target of a question ({by, target, goal}), or null when none applies.
  // ``measures`` are the rule's measure objects chosen, in request order.
  const index = mainMeasure(measures, policy);
  if (index < 0) return null;
  const m = measures[index];
  const worth = unitWorth(m, policy);
  const unitText = worth === 1 ? "" : ` at ${worth.toLocaleString("en")} each`;
  if (ranked) {
    const gap = GAP_UNITS * worth;
    return { by: index, target: { top_gap: gap, confidence: CONFIDENCE },
      goal: `puts two keys ${gap.toLocaleString("en")} apart by ${named(m)} in the right order `
        + `with ${CONFIDENCE * 100}% confidence (${GAP_UNITS} units' worth${unitText})` };
  }
  const halfwidth = HALFWIDTH_UNITS * worth;
  return { by: index, target: { ci_halfwidth: halfwidth, measure: index },
    goal: `keeps ${named(m)} within ±${halfwidth.toLocaleString("en")} (95%): a cell `
      + (worth === 1 ? `of ${HALFWIDTH_UNITS} units` : `to which ${HALFWIDTH_UNITS} units `
        + `contribute fully (${worth.toLocaleString("en")} each)`) + " stands out from zero" };
}
