// Privacy amounts as people read them: a decimal (rho 0.1, epsilon 1.48, 0.0001), with the
// hub's exact fraction on hover (the title) and kept exact everywhere else (the API, the
// downloads, every comparison: accuracy.js).
//
// The decimal keeps three significant digits and the whole integer part, rounded half up,
// computed exactly from the fraction (BigInt), so that it is the same digit for digit as the
// command line's (connectors/common/amounts.py): 37/25 -> 1.48, 9/20 -> 0.45,
// 1/10000 -> 0.0001, 1/3 -> 0.333, 100/3 -> 33.3.
// (No import: dom.js's refusal box uses it too.)

const SYMBOLS = { zcdp: "rho", pure: "epsilon" };
const DIGITS = 3;

function parse(text) {
  // "37/25", "3" or "0.45" -> [numerator, denominator] (BigInt), or null
  const s = String(text).trim();
  const m = s.match(/^(-?)(\d+)(?:\/(\d+)|\.(\d+))?$/);
  if (!m) return null;
  const sign = m[1] ? -1n : 1n;
  if (m[3] !== undefined) return [sign * BigInt(m[2]), BigInt(m[3])];
  const frac = m[4] || "";
  const den = 10n ** BigInt(frac.length);
  return [sign * (BigInt(m[2]) * den + BigInt(frac || "0")), den];
}

export function decimal(text) {
  // The decimal of an exact amount ("" for none; the text itself if it is no number).
  if (text === null || text === undefined || text === "") return "";
  const parsed = parse(text);
  if (!parsed || parsed[1] === 0n) return String(text);
  const [num, den] = parsed;
  const negative = num < 0n;
  const n = negative ? -num : num;
  if (n === 0n) return "0";
  let places;
  if (n >= den) {
    places = Math.max(0, DIGITS - String(n / den).length);
  } else {
    let zeros = 0; // zeros right after the point
    while (n * 10n ** BigInt(zeros + 1) < den) zeros += 1;
    places = DIGITS + zeros;
  }
  const scale = 10n ** BigInt(places);
  const rounded = (2n * n * scale + den) / (2n * den); // half up
  let digits = rounded.toString();
  if (places > 0) {
    digits = digits.padStart(places + 1, "0");
    digits = `${digits.slice(0, -places)}.${digits.slice(-places)}`
      .replace(/0+$/, "").replace(/\.$/, "");
  }
  return (negative && digits !== "0" ? "-" : "") + digits;
}

export function symbol(measure) {
  // zcdp -> rho, pure -> epsilon (the privacy parameter a policy's accounting spends)
  return SYMBOLS[measure] || measure || "";
}

export function amount(text, measure) {
  // A span with the decimal (after its symbol, given a measure) and the exact value on hover.
  if (text === null || text === undefined || text === "") return "-";
  const span = document.createElement("span");
  span.className = "amount";
  span.title = `exact: ${text}`;
  span.dataset.exact = String(text);
  span.textContent = measure ? `${symbol(measure)} ${decimal(text)}` : decimal(text);
  return span;
}

export function costOf(cost) {
  // A cost object of the API ({amount, measure, delta?}) as an element: "rho 0.1".
  if (!cost) return "-";
  return [amount(cost.amount, cost.measure),
    cost.delta && cost.delta !== "0" ? [", delta ", amount(cost.delta)] : null];
}

// A size in bytes, as connectors/common/amounts.py's size_text writes it: "512 bytes",
// "1.0 KB", "2.5 GB" (decimal units to a tenth, rounded half up in integers).
export function sizeText(n) {
  for (const [unit, scale] of [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["KB", 1e3]]) {
    if (n >= scale) {
      const tenths = Math.floor((n * 10 + scale / 2) / scale);
      return `${Math.floor(tenths / 10).toLocaleString("en")}.${tenths % 10} ${unit}`;
    }
  }
  return `${Number(n).toLocaleString("en")} bytes`;
}
