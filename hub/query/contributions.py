"""Size contribution bounds from DP facts about how much each unit contributes.

A governance officer sizing ``contribution_bounds`` needs to know how many rows units
have: a bound below what most units have drops many rows (a bias towards zero), a bound far
above it buys noise for nothing. This releases, at a cost charged to the officer's
organisation like any query, over every visible row (no bounding: the question is what
bounding would keep):

* DP quantiles of each unit's rows in total (for ``max_rows``) and of its largest number of
  rows in one period (for ``max_rows_per_period``): OpenDP's exponential mechanism
  (``make_private_quantile``) over a public grid of candidate bounds (1 to 1,000). Each unit
  contributes one value to each list, so adding or removing a unit is symmetric distance 1.
* the share of rows the current bounds leave out, from two DP sums per bound: the rows kept,
  sum over units of min(n, m) (one unit moves it by at most m; per period, a unit's kept rows
  over all its periods, clamped at C = 1,000), and the rows left out, sum of
  min(max(n - m, 0), C) (by at most C; a unit with more than m + C rows counts as m + C, so
  the share is a lower bound then). Noise is OpenDP's, as for counts; the share's interval
  takes each sum's interval at alpha / 2 (post-processing).

Every part gets an equal share of the cost (sequential composition).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.errors import InvalidInput, invalid_body
from hub.governance.policies import MAX_ROWS_CAP, Policy
from hub.privacy.accounting import Cost, parse_amount
from hub.privacy.intervals import estimates
from hub.privacy.noise import (
    NoiseSpec,
    calibrate,
    calibrate_quantile,
    quantile_release,
    release_counts,
    sensitivity,
    split_cost,
)

__all__ = ["CANDIDATES", "QUANTILES", "BoundsRequest", "Contributions", "Suggestion",
           "calibrate_suggestion", "suggest"]

#: The quantile levels released by default.
QUANTILES = (0.5, 0.9, 0.95, 0.99)
#: Public candidate bounds: every integer to 100, then coarser up to the policy cap.
CANDIDATES: tuple[float, ...] = tuple(
    float(x) for x in [*range(1, 101), *range(110, 201, 10), *range(250, 501, 50),
                       *range(600, MAX_ROWS_CAP + 1, 100)])
#: Rows beyond the bound one unit may add to the left-out sum (its sensitivity).
_BEYOND_CAP = MAX_ROWS_CAP


class BoundsRequest(BaseModel):
    """The body of ``POST /v1/governance/bounds`` (docs/governance.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1, max_length=200,
                         description="A dataset with an active policy.")
    cost: str | int = Field(
        description="Exact cost, charged to your organisation on the dataset's budget: a "
        "decimal or fraction string (\"1/20\") or an integer; at most the per-query cap.")
    quantiles: list[float] | None = Field(
        default=None, max_length=20,
        description="Distinct quantile levels, each strictly between 0 and 1 (default: 0.5, "
        "0.9, 0.95, 0.99).")

    @field_validator("cost", mode="before")
    @classmethod
    def _exact_cost(cls, value: Any) -> str:
        return str(parse_amount(value))  # ValueError for floats, negatives, junk

    @property
    def amount(self) -> Fraction:
        return parse_amount(self.cost)

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(self.quantiles or QUANTILES)

    @classmethod
    def parse(cls, data: Any) -> BoundsRequest:
        """Validate a decoded JSON body; :class:`InvalidInput` lists every problem."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise invalid_body("the request is invalid", exc) from None


class Contributions(Protocol):
    """What this needs of the query engine (hub.query.engine.QueryEngine)."""

    def contributions(self, dataset: str, period: str | None,
                      per_period: int | None = None) -> list[tuple[int, int, int]]: ...


@dataclass(frozen=True)
class _Part:
    """One list (total or per period): the bound it sizes, and its calibrated noises."""

    name: str
    bound: str
    current: int | None
    quantiles: tuple[NoiseSpec, ...]
    kept: NoiseSpec | None  # None: the policy sets no such bound
    left_out: NoiseSpec | None


@dataclass(frozen=True)
class Suggestion:
    """The calibrated question (no data, nothing spent)."""

    policy: Policy
    period: str | None
    cost: Cost
    levels: tuple[float, ...]
    parts: tuple[_Part, ...]


def calibrate_suggestion(policy: Policy, period: str | None, cost: Cost,
                         levels: tuple[float, ...] = QUANTILES) -> Suggestion:
    """Check the levels and calibrate every measurement (no data, nothing spent)."""
    if not levels or any(not 0 < q < 1 for q in levels) or len(set(levels)) != len(levels):
        raise InvalidInput("quantiles are distinct levels strictly between 0 and 1",
                           field="quantiles")
    bounds = policy.contribution_bounds
    lists: list[tuple[str, str, int | None]] = [("rows_per_unit", "max_rows", bounds.max_rows)]
    if period is not None:
        lists.append(("rows_per_unit_per_period", "max_rows_per_period",
                      bounds.max_rows_per_period))
    sums = sum(2 for *_, current in lists if current is not None)
    shares = iter(split_cost(cost, len(lists) * len(levels) + sums))
    quantile = sensitivity("quantile", 1, (CANDIDATES[0], CANDIDATES[-1]))
    parts = []
    for name, bound, current in lists:
        noises = tuple(calibrate_quantile(next(shares), quantile, Fraction(q), CANDIDATES)
                       for q in levels)
        kept = left_out = None
        if current is not None:  # one scalar each: a unit moves it by m (total), or by C
            kept = calibrate(next(shares), sensitivity(
                "count", current if bound == "max_rows" else _BEYOND_CAP))
            left_out = calibrate(next(shares), sensitivity("count", _BEYOND_CAP))
        parts.append(_Part(name, bound, current, noises, kept, left_out))
    return Suggestion(policy, period, cost, tuple(levels), tuple(parts))


def suggest(s: Suggestion, engine: Contributions) -> dict[str, Any]:
    """Release the quantiles and shares (module docstring); JSON-ready, data-free facts."""
    per_period = s.policy.contribution_bounds.max_rows_per_period
    units = engine.contributions(s.policy.dataset, s.period, per_period)
    out: dict[str, Any] = {"dataset": s.policy.dataset, "cost": s.cost.as_json(),
                           "mechanism": "exponential", "candidates": [1, MAX_ROWS_CAP]}
    for i, part in enumerate(s.parts):
        values = [float(u[i]) for u in units]  # rows in total; most rows in one period
        released = {f"{q:g}": int(quantile_release([values], noise)[0])
                    for q, noise in zip(s.levels, part.quantiles, strict=True)}
        view: dict[str, Any] = {"quantiles": released, "current": part.current}
        if part.current is None or part.kept is None or part.left_out is None:
            view["note"] = f"the policy sets no {part.bound}"
        else:
            m = part.current
            beyond = ([min(max(n - m, 0), _BEYOND_CAP) for n, _, _ in units] if i == 0
                      else [min(c, _BEYOND_CAP) for _, _, c in units])
            kept_rows = sum(min(n, m) for n, _, _ in units) if i == 0 else (
                sum(min(n - c, _BEYOND_CAP) for n, _, c in units))
            view["left_out_share"] = _share(kept_rows, sum(beyond), part.kept, part.left_out)
            under = [q for q in s.levels if released[f"{q:g}"] <= m]
            view["note"] = (
                f"about {max(under):.0%} of units or more have no more rows than the current "
                f"{part.bound} = {m}" if under else
                f"the current {part.bound} = {m} is below the {min(s.levels):g} quantile: "
                "most units lose rows to bounding") + (
                f"; about {view['left_out_share']['value']:.1%} of rows are left out "
                f"({view['left_out_share']['low']:.1%} to {view['left_out_share']['high']:.1%})")
        out[part.name] = view
    return out


def _share(kept: int, left_out: int, kept_noise: NoiseSpec,
           left_noise: NoiseSpec) -> dict[str, float]:
    """The left-out share with an honest 95% interval from the two sums' 97.5% intervals."""
    (k,) = estimates(release_counts([kept], kept_noise), kept_noise, alpha=0.025,
                     nonnegative=True)
    (d,) = estimates(release_counts([left_out], left_noise), left_noise, alpha=0.025,
                     nonnegative=True)

    def ratio(a: float, b: float) -> float:
        return a / (a + b) if a + b > 0 else 0.0

    return {"value": ratio(d.value, k.value), "low": ratio(d.low, k.high),
            "high": ratio(d.high, k.low) if k.low + d.high > 0 else 1.0}
