"""How ``tahub query`` prints a release and an estimate: honestly (connectors.analyst.result).

A release is printed in the hub's order, or as a top list (``sort``, or a ranked release) by
:meth:`QueryResult.top`: rank order with each rank's interval, else the lower end of the 95%
interval, never the noisy value. A cell whose interval holds zero is marked :data:`UNCERTAIN`
and left out of a top list unless ``include_uncertain``. What an absent key means (selected
keys), the ranking's and the route's notes and how rows were bounded follow the table.
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from connectors.analyst.result import (
    BudgetBalance,
    Cell,
    MeasureInfo,
    PrivacyCost,
    QueryEstimate,
    QueryResult,
    ResultRow,
    format_number,
)
from connectors.common.amounts import amount
from connectors.common.cli import console

__all__ = ["UNCERTAIN", "budget_line", "show_estimate", "show_result"]

_num = format_number
#: How a cell not distinguishable from zero is marked.
UNCERTAIN = "~"


def _cell(cell: Cell, exact: bool) -> str:
    """A cell as printed: an exact answer's value alone, else the value with its interval,
    marked when the interval holds zero."""
    if exact:
        return format_number(cell.value)
    return (UNCERTAIN if cell.distinguishable is False else "") + str(cell)


def _noise(m: MeasureInfo) -> str:
    if m.mechanism == "none":
        return "exact, no noise"
    parts = [m.mechanism or "?"]
    if m.noise_scale is not None:
        parts.append(f"scale {m.noise_scale:.4g}")
    if m.halfwidth_95 is not None:
        parts.append(f"95% +/-{m.halfwidth_95:.4g}")
    elif m.note:
        parts.append(m.note)
    return ", ".join(parts)


def budget_line(b: BudgetBalance | None) -> str:
    if b is None:
        return ""
    def shown(text: str | None) -> str:
        return amount(text, b.measure, exact=True)

    month = f", this month {shown(b.month.left)}" if b.month.left is not None else ""
    return (f"budget left: yours {shown(b.member.left)}{month}, "
            f"all members {shown(b.global_.left)}; next query at most {shown(b.can_spend)}")


def _listed(result: QueryResult, sort: str | None, limit: int, include_uncertain: bool
            ) -> tuple[list[ResultRow], int, int]:
    """The rows to print, how many more are listed, and how many a top list left out as
    not distinguishable from zero."""
    hidden = 0
    if sort is not None or result.ranked:
        rows = result.top(None, sort, include_uncertain=include_uncertain)
        if not include_uncertain:
            hidden = len(result.rows) - len(rows)
    else:
        rows = result.records()
    shown = rows if limit <= 0 else rows[:limit]
    return shown, len(rows) - len(shown), hidden


def _title(result: QueryResult) -> str:
    names = ", ".join(result.measure_names)
    dims = ", ".join(result.dimensions)
    if result.route is not None:
        dims = " -> ".join(result.route.stages)
    if result.ranking is not None:
        return (f"{result.dataset}: the top {result.ranking.k}"
                + (f" of {dims}" if dims else "") + f" by {result.ranking.by}")
    return f"{result.dataset}: {names}" + (f" by {dims}" if dims else "")


def show_result(result: QueryResult, *, sort: str | None, limit: int,
                 include_uncertain: bool = False) -> None:
    out = console()
    names = result.measure_names
    shown, more, hidden = _listed(result, sort, limit, include_uncertain)
    legend = "value [low, high]: noisy value, 95% interval; ~: the interval holds 0"
    if result.exact is not None:
        legend = f"exact values, without noise: {result.exact.reason}"
    elif result.ranking is not None:
        legend += "; rank (low-high): the true rank's interval (90%, all together)"
    table = Table(title=_title(result))
    if result.ranking is not None:
        table.add_column("rank", justify="right")
    for name in result.dimensions:
        table.add_column(name)
    for name in names:
        table.add_column(name, justify="right")
    for row in shown:
        ranked = [] if result.ranking is None else [str(row.rank or "")]
        labels = ["(unknown)" if k is None else k for k in row.keys.values()]
        table.add_row(*map(escape, ranked + labels),
                      *(escape(_cell(row[n], result.exact is not None)) for n in names))
    out.print(table)
    out.print(escape(legend))
    if hidden:
        by = sort or (result.ranking.by if result.ranking else "")
        what = "of zero" if result.exact is not None else "not distinguishable from zero"
        out.print(f"{hidden:,} cells {what} by {by} are left out of this top list: "
                  "--include-uncertain shows them")
    if (sort is not None and result.ranking is None and len(result.rows) >= 20
            and result.exact is None):
        out.print(f"each interval holds 95% on its own: of {len(result.rows):,} cells, up to "
                  f"about {result.by_chance(sort):.0f} with nothing there would look "
                  "distinguishable by chance")
    if more:
        out.print(f"... {more:,} more (of {len(result.rows):,} listed): "
                  "--limit 0 shows all, --csv/--parquet saves every cell")
    for m in result.measures:
        out.print(f"  {m.name}: {_noise(m)}")
    keys = result.keys
    if keys is not None and keys.selected:
        out.print(f"  keys: {keys.listed if keys.listed is not None else len(result.rows):,} "
                  f"listed of {result.cells or 0:,}, chosen by a DP threshold on distinct "
                  f"units; {keys.absent or ''}")
    elif keys is not None and keys.mode == "present":
        out.print(f"  keys: {keys.listed if keys.listed is not None else len(result.rows):,} "
                  f"listed of {result.cells or 0:,}; {keys.absent or ''}")
    if result.ranking is not None and result.ranking.note:
        out.print(f"  ranking: {result.ranking.note}")
    if result.route is not None and result.route.assembly:
        out.print(f"  route: {result.route.assembly}")
    if result.bounding is not None and result.bounding.note:
        out.print(f"  bounding: {result.bounding.note}")
    if result.exact is not None and not result.reused:
        out.print(f"[bold]Exact answer over public rows:[/] nothing charged; query id "
                  f"{result.query_id}")
    elif result.reused:
        out.print(f"[bold]Asked before:[/] the stored release {result.query_id} "
                      f"(it cost {result.cost}); nothing charged now.")
    else:
        eps = result.epsilon_delta or {}
        implied = (f" (epsilon {eps['epsilon']:.4g} at delta {eps['delta']:.3g})"
                   if eps.get("epsilon") is not None else "")
        out.print(f"[bold]Charged:[/] {result.charged or result.cost}{implied}; "
                      f"query id {result.query_id}")
    out.print(budget_line(result.budget))


def _share(cost: PrivacyCost | None) -> str:
    return "" if cost is None else f" (cost share: {cost})"


def show_estimate(est: QueryEstimate) -> None:
    out = console()
    table = Table(title=f"Estimate: {est.dataset}, {est.cells:,} cells (nothing spent)")
    for column in ("measure", "mechanism", "noise scale", "95% +/-", "cost share"):
        table.add_column(column)
    for m in est.measures:
        table.add_row(m.name, m.mechanism or "", _num(m.noise_scale),
                      "depends on the data" if m.halfwidth_95 is None else _num(m.halfwidth_95),
                      "" if m.cost is None else str(m.cost))
    out.print(table)
    keys = est.keys
    if keys is not None and keys.selected:
        out.print(f"keys: chosen by a DP threshold on distinct units (threshold "
                  f"{keys.threshold}): a key is listed with probability 1/2 from "
                  f"{keys.appears_50} units and 95% from {keys.appears_95}; absent keys "
                  "say nothing more" + _share(keys.cost))
    elif keys is not None:
        out.print(f"keys: every key of the grid, zeros included ({est.cells:,})")
    if est.ranking is not None:
        gap = "" if est.ranking.gap_90 is None else (
            f": two keys {est.ranking.gap_90:.3g} apart by {est.ranking.by} are put in the "
            "right order with probability 90%")
        out.print(f"ranking: top {est.ranking.k} by {est.ranking.by}{gap}"
                  + _share(est.ranking.cost))
    if est.bounding is not None and est.bounding.note:
        out.print(f"bounding: {est.bounding.note}")
    eps = est.epsilon_delta or {}
    implied = (f" (epsilon {eps['epsilon']:.4g} at delta {eps['delta']:.3g})"
               if eps.get("epsilon") is not None else "")
    out.print(f"cost: {est.cost}{implied}" + (f"; allowed by rule {est.rule}"
                                                   if est.rule else ""))
    if est.reused:
        out.print("asked before: running it returns the stored release, at no cost")
    out.print(budget_line(est.budget))
    if est.budget_after:
        out.print("after it: " + ", ".join(
            f"{k.replace('_', ' ')} "
            f"{amount(v, est.budget.measure if est.budget else None, exact=True)}"
            for k, v in est.budget_after.items()))
    if est.would_be_refused is not None:
        out.print(f"[bold red]would be refused[/] ({est.would_be_refused.rule}): "
                      f"{est.would_be_refused.detail}")
