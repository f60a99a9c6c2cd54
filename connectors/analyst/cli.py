"""``tahub query``: an analyst's command line, a thin shell over :class:`AnalystClient`.

::

    tahub query run DATASET --by DIM... --measure M... --filter F... --cost C | --target HW
                    [--csv FILE] [--parquet FILE] [--json] [--sort MEASURE] [--limit N]
    tahub query estimate DATASET ...the same question...     cost and accuracy, spends nothing
    tahub query budget [DATASET]                               what is spent and left
    tahub query policies                                       what you may ask
    tahub query history                                        your organisation's queries
    tahub query show QUERY_ID                                  a past release again, free
    tahub query releases                                       releases published to you
    tahub query release ID                                     one of them (or a query), free
    tahub query publish QUERY_ID --title T [--to ORG...] [--note N]   governance: share one
    tahub query withdraw ID                                    governance: withdraw it

Credentials: ``--hub``, ``--client-id``, ``--client-secret`` or ``TAHUB_HUB_URL``,
``TAHUB_CLIENT_ID``, ``TAHUB_CLIENT_SECRET`` (a client with the ``analyst`` role;
``publish`` and ``withdraw`` need ``governance``). A refusal prints the hub's reason with the
rule that refused and exits 1, without a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from connectors.analyst.client import (
    AnalystClient,
    BudgetBalance,
    MeasureInfo,
    PublishedRelease,
    QueryEstimate,
    QueryResult,
    parse_filter,
)
from connectors.common.cli import ClientId, ClientSecret, Hub, console, user_errors
from hub.errors import ConfigError

__all__ = ["app"]

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="query",
    help="Differentially private queries over all partners' data (an analyst's client).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Dataset = Annotated[str, typer.Argument(help="The dataset, e.g. bank_alerts.")]
By = Annotated[
    list[str] | None,
    typer.Option("--by", "-b", help="A dimension to group by (repeat; output order)."),
]
Measures = Annotated[
    list[str] | None,
    typer.Option(
        "--measure", "-m",
        help="count, count_units, linked_units, sum:FIELD, mean:FIELD, quantile:FIELD:Q "
        "(repeat). Default: count.",
    ),
]
Filters = Annotated[
    list[str] | None,
    typer.Option(
        "--filter", "-f",
        help="FIELD=CODE[,CODE...] or FIELD=YYYY-MM..YYYY-MM for a period (repeat).",
    ),
]
Cost = Annotated[
    str | None,
    typer.Option(help="Exact privacy cost in the policy's measure (rho or epsilon): 1/10, 0.1."),
]
Target = Annotated[
    float | None,
    typer.Option(
        help="Instead of --cost: the 95% interval half-width wanted; the hub solves for the "
        "cost (refused above the per-query cap).",
    ),
]
TargetMeasure = Annotated[
    int, typer.Option(help="Which measure --target applies to (0 = the first).")
]
AllowNegative = Annotated[
    bool, typer.Option(help="Keep negative noisy counts (unbiased) instead of flooring at 0.")
]
ConsistentTotals = Annotated[
    bool, typer.Option(help="Also release totals that add up across the dimensions.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the hub's JSON, for scripts.")]
CsvOut = Annotated[Path | None, typer.Option(help="Save every cell as CSV.")]
ParquetOut = Annotated[Path | None, typer.Option(help="Save every cell as Parquet.")]
SortBy = Annotated[
    str | None, typer.Option(help="Show cells by this measure's value, largest first.")
]
Limit = Annotated[int, typer.Option(help="Cells shown (0 = all); files get all.")]


def _client(hub: str | None, client_id: str | None, client_secret: str | None) -> AnalystClient:
    return AnalystClient.from_env(hub, client_id, client_secret)


def _question(
    by: list[str] | None,
    measures: list[str] | None,
    filters: list[str] | None,
    cost: str | None,
    target: float | None,
    target_measure: int,
    allow_negative: bool,
    consistent_totals: bool,
) -> dict[str, Any]:
    """The keyword arguments of AnalystClient.query/estimate for these options."""
    chosen: dict[str, Any] = {}
    for text in filters or []:
        name, value = parse_filter(text)
        if name in chosen:
            raise ConfigError(f"--filter {name}=... is given twice: list its codes once, "
                              "separated by commas", field="filters")
        chosen[name] = value
    return {
        "group_by": by or [],
        "measures": measures or ["count"],
        "filters": chosen,
        "cost": cost,
        "target": None
        if target is None
        else {"ci_halfwidth": target, "measure": target_measure},
        "postprocess": {"nonnegative": not allow_negative,
                        "consistent_totals": consistent_totals},
    }


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


# -- rendering --------------------------------------------------------------------------------
def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    number = float(value)
    return f"{number:.0f}" if abs(number) >= 1000 else f"{number:.4g}"


def _cell(cell: Any) -> str:
    if not isinstance(cell, dict):
        return ""
    if cell.get("low") is None or cell.get("high") is None:
        return _num(cell.get("value"))
    return f"{_num(cell.get('value'))} [{_num(cell['low'])}, {_num(cell['high'])}]"


def _sort_value(row: dict[str, Any], name: str) -> float:
    cell = row.get(name)
    value = cell.get("value") if isinstance(cell, dict) else None
    return float("-inf") if value is None else float(value)


def _noise(m: MeasureInfo) -> str:
    parts = [m.mechanism or "?"]
    if m.noise_scale is not None:
        parts.append(f"scale {m.noise_scale:.4g}")
    if m.halfwidth_95 is not None:
        parts.append(f"95% +/-{m.halfwidth_95:.4g}")
    elif m.note:
        parts.append(m.note)
    return ", ".join(parts)


def _budget_line(b: BudgetBalance | None) -> str:
    if b is None:
        return ""
    month = f", this month {b.month.left}" if b.month.left is not None else ""
    return (f"budget left ({b.measure}): yours {b.member.left}{month}, "
            f"all members {b.global_.left}; next query at most {b.can_spend}")


def _show_result(result: QueryResult, *, sort: str | None, limit: int) -> None:
    out = console()
    names = result.measure_names
    rows = result.rows
    if sort is not None:
        if sort not in names:
            raise ConfigError(f"--sort {sort}: not a measure of this release ({', '.join(names)})",
                              field="sort")
        rows = sorted(rows, key=lambda r: _sort_value(r, sort), reverse=True)
    shown = rows if limit <= 0 else rows[:limit]
    table = Table(title=f"{result.dataset}: {', '.join(names)}"
                  + (f" by {', '.join(result.dimensions)}" if result.dimensions else ""),
                  caption=escape("value [low, high] = noisy value and its 95% interval"))
    for name in result.dimensions:
        table.add_column(name)
    for name in names:
        table.add_column(name, justify="right")
    for row in shown:
        keys = ["(unknown)" if row.get(d) is None else str(row.get(d))
                for d in result.dimensions]
        table.add_row(*map(escape, keys), *(escape(_cell(row.get(n))) for n in names))
    out.print(table)
    if len(shown) < len(rows):
        out.print(f"... {len(rows) - len(shown):,} more cells (of {len(rows):,}): "
                      "--limit 0 shows all, --csv/--parquet saves them")
    for m in result.measures:
        out.print(f"  {m.name}: {_noise(m)}")
    if result.bounding and result.bounding.get("note"):
        out.print(f"  bounding: {result.bounding['note']}")
    if result.reused:
        out.print(f"[bold]Asked before:[/] the stored release {result.query_id} "
                      f"(it cost {result.cost}); nothing charged now.")
    else:
        eps = result.epsilon_delta or {}
        implied = (f" (epsilon {eps['epsilon']:.4g} at delta {eps['delta']:.3g})"
                   if eps.get("epsilon") is not None else "")
        out.print(f"[bold]Charged:[/] {result.charged or result.cost}{implied}; "
                      f"query id {result.query_id}")
    out.print(_budget_line(result.budget))


def _output(result: QueryResult, *, as_json: bool, sort: str | None, limit: int,
            csv: Path | None, parquet: Path | None) -> None:
    """A result as JSON or as a table (a published release with its title first), then
    saved to the files asked for."""
    if as_json:
        _echo_json(result.model_dump(mode="json", by_alias=True))
    else:
        p = result.publication
        if p is not None:
            console().print(f"[bold]{escape(p.title)}[/] published by "
                            f"{escape(p.publisher or '?')} to {escape(_audience(p))}"
                            + (f"\n{escape(p.note)}" if p.note else ""))
        _show_result(result, sort=sort, limit=limit)
    _save(result, csv, parquet)


def _save(result: QueryResult, csv: Path | None, parquet: Path | None) -> None:
    if csv is None and parquet is None:
        return
    table = result.to_arrow()
    try:
        if csv is not None:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table.replace_schema_metadata(None), csv)
            typer.echo(f"wrote {csv} ({table.num_rows:,} rows)")
        if parquet is not None:
            import pyarrow.parquet as pq

            pq.write_table(table, parquet)
            typer.echo(f"wrote {parquet} ({table.num_rows:,} rows)")
    except OSError as exc:
        raise ConfigError(f"cannot write the release ({exc.strerror or exc})") from None


def _show_estimate(est: QueryEstimate) -> None:
    out = console()
    table = Table(title=f"Estimate: {est.dataset}, {est.cells:,} cells (nothing spent)")
    for column in ("measure", "mechanism", "noise scale", "95% +/-", "cost share"):
        table.add_column(column)
    for m in est.measures:
        table.add_row(m.name, m.mechanism or "", _num(m.noise_scale),
                      "depends on the data" if m.halfwidth_95 is None else _num(m.halfwidth_95),
                      "" if m.cost is None else str(m.cost))
    out.print(table)
    eps = est.epsilon_delta or {}
    implied = (f" (epsilon {eps['epsilon']:.4g} at delta {eps['delta']:.3g})"
               if eps.get("epsilon") is not None else "")
    out.print(f"cost: {est.cost}{implied}" + (f"; allowed by rule {est.rule}"
                                                   if est.rule else ""))
    if est.reused:
        out.print("asked before: running it returns the stored release, at no cost")
    out.print(_budget_line(est.budget))
    if est.budget_after:
        out.print("after it: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                                for k, v in est.budget_after.items()))
    if est.would_be_refused is not None:
        out.print(f"[bold red]would be refused[/] ({est.would_be_refused.rule}): "
                      f"{est.would_be_refused.detail}")


# -- commands ---------------------------------------------------------------------------------
@app.command()
@user_errors
def run(
    dataset: Dataset,
    by: By = None,
    measure: Measures = None,
    filter_: Filters = None,
    cost: Cost = None,
    target: Target = None,
    target_measure: TargetMeasure = 0,
    allow_negative: AllowNegative = False,
    consistent_totals: ConsistentTotals = False,
    csv: CsvOut = None,
    parquet: ParquetOut = None,
    sort: SortBy = None,
    limit: Limit = 40,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """Run a DP query: spends its cost from your budget (a repeated question is free)."""
    question = _question(by, measure, filter_, cost, target, target_measure, allow_negative,
                         consistent_totals)
    with _client(hub, client_id, client_secret) as client:
        result = client.query(dataset, **question)
    _output(result, as_json=as_json, sort=sort, limit=limit, csv=csv, parquet=parquet)


@app.command()
@user_errors
def estimate(
    dataset: Dataset,
    by: By = None,
    measure: Measures = None,
    filter_: Filters = None,
    cost: Cost = None,
    target: Target = None,
    target_measure: TargetMeasure = 0,
    allow_negative: AllowNegative = False,
    consistent_totals: ConsistentTotals = False,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """What a query would cost and how accurate it would be; spends nothing."""
    question = _question(by, measure, filter_, cost, target, target_measure, allow_negative,
                         consistent_totals)
    with _client(hub, client_id, client_secret) as client:
        est = client.estimate(dataset, **question)
    if as_json:
        _echo_json(est.model_dump(mode="json", by_alias=True))
    else:
        _show_estimate(est)


@app.command()
@user_errors
def budget(
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset.")] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """Your organisation's privacy budget: spent and left, per dataset (exact amounts)."""
    with _client(hub, client_id, client_secret) as client:
        balances = [client.budget(dataset)] if dataset else client.budgets()
    if as_json:
        _echo_json([b.model_dump(mode="json", by_alias=True) for b in balances])
        return
    table = Table(title="Your privacy budget (budgets never renew by themselves)")
    for column in ("dataset", "measure", "you spent", "you have left", "month left",
                   "all members left", "per query", "next query at most",
                   "cumulative loss (all members)"):
        table.add_column(column)
    for b in balances:
        cumulative = "0"
        if (b.cumulative is not None and b.cumulative.epsilon is not None
                and b.cumulative.amount not in (None, "0")):
            cumulative = f"{b.cumulative.amount} (epsilon {b.cumulative.epsilon:.4g}"
            cumulative += f", delta {b.cumulative.delta:.3g})" if b.cumulative.delta else ")"
        table.add_row(b.dataset, b.measure, b.member.spent or "0", b.member.left or "",
                      b.month.left or "no cap", b.global_.left or "", b.per_query or "",
                      b.can_spend or "", cumulative)
    console().print(table)


@app.command()
@user_errors
def policies(
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """What you may ask: per dataset, the policy rules that apply to you."""
    with _client(hub, client_id, client_secret) as client:
        views = client.policies()
    if as_json:
        _echo_json(views)
        return
    out = console()
    if not views:
        out.print("No policy lets you query anything (deny by default).")
    for view in views:
        table = Table(
            title=f"{view.get('dataset')}: {view.get('accounting')} accounting, at most "
            f"{view.get('per_query')} per query, rows per unit <= {view.get('max_rows')}, "
            f"needs {view.get('min_partners')} partners"
        )
        for column in ("rule", "dimensions (max per query)", "filters", "measures"):
            table.add_column(column, overflow="fold")
        for rule in view.get("rules", []):
            measures = []
            for m in rule.get("measures", []):
                text = m.get("function", "?") + (f":{m['field']}" if m.get("field") else "")
                if m.get("clamp"):
                    text += f" (clamped to {_num(m['clamp'][0])}..{_num(m['clamp'][1])})"
                measures.append(text)
            table.add_row(
                str(rule.get("name")),
                f"{', '.join(rule.get('dimensions', []))} ({rule.get('max_dimensions')})",
                ", ".join(rule.get("filters", [])) or "none",
                "\n".join(measures),
            )
        out.print(table)


@app.command()
@user_errors
def history(
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """Your organisation's queries: shape, cost and status (never values)."""
    with _client(hub, client_id, client_secret) as client:
        records = client.history()
    if as_json:
        _echo_json([r.model_dump(mode="json") for r in records])
        return
    table = Table(title="Your organisation's queries")
    for column in ("query id", "dataset", "cost", "status", "created", "shape"):
        table.add_column(column, overflow="fold")
    for r in records:
        shape = r.shape or {}
        dims = ", ".join(str(d.get("name")) for d in shape.get("dimensions", [])
                         if isinstance(d, dict))
        measures = ", ".join(
            str(m.get("function")) + (f":{m['field']}" if m.get("field") else "")
            for m in shape.get("measures", []) if isinstance(m, dict)
        )
        table.add_row(r.id, r.dataset, "" if r.cost is None else str(r.cost), r.status or "",
                      "" if r.created_at is None else r.created_at.strftime("%Y-%m-%d %H:%M"),
                      measures + (f" by {dims}" if dims else ""))
    console().print(table)


@app.command()
@user_errors
def show(
    query_id: Annotated[str, typer.Argument(help="A query id from `tahub query history`.")],
    csv: CsvOut = None,
    parquet: ParquetOut = None,
    sort: SortBy = None,
    limit: Limit = 40,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """A past release of your organisation again, at no cost."""
    with _client(hub, client_id, client_secret) as client:
        result = client.release(query_id)
    _output(result, as_json=as_json, sort=sort, limit=limit, csv=csv, parquet=parquet)


def _audience(p: PublishedRelease) -> str:
    if isinstance(p.audience, list):
        return ", ".join(p.audience)
    return "every member" if p.audience == "all" else "named members (you among them)"


def _query_text(query: dict[str, Any]) -> str:
    measures = ", ".join(str(m.get("name")) for m in query.get("measures", [])
                         if isinstance(m, dict))
    dims = ", ".join(str(d) for d in query.get("dimensions", []))
    filters = "; ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                        for k, v in (query.get("filters") or {}).items())
    return measures + (f" by {dims}" if dims else "") + (f" where {filters}" if filters else "")


@app.command()
@user_errors
def releases(
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """The catalogue: releases published to your organisation (reading them is free)."""
    with _client(hub, client_id, client_secret) as client:
        found = client.releases()
    if as_json:
        _echo_json([r.model_dump(mode="json") for r in found])
        return
    if not found:
        console().print("No release is published to your organisation yet.")
        return
    table = Table(title="Releases published to your organisation (free to read)")
    for column in ("id", "title", "dataset", "query", "cost", "mechanisms", "published",
                   "publisher", "audience"):
        table.add_column(column, overflow="fold")
    for r in found:
        table.add_row(r.id, r.title, r.dataset, _query_text(r.query),
                      "" if r.cost is None else str(r.cost), ", ".join(r.mechanisms),
                      "" if r.published_at is None else r.published_at.strftime("%Y-%m-%d"),
                      r.publisher or "", _audience(r))
    console().print(table)


@app.command()
@user_errors
def release(
    release_id: Annotated[
        str, typer.Argument(help="A release id from `tahub query releases` (or a query id).")
    ],
    csv: CsvOut = None,
    parquet: ParquetOut = None,
    sort: SortBy = None,
    limit: Limit = 40,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """A published release with every cell, at no cost."""
    with _client(hub, client_id, client_secret) as client:
        result = client.release(release_id)
    _output(result, as_json=as_json, sort=sort, limit=limit, csv=csv, parquet=parquet)


@app.command()
@user_errors
def publish(
    query_id: Annotated[str, typer.Argument(help="A query id of your organisation.")],
    title: Annotated[str, typer.Option(help="The title members see in the catalogue.")],
    to: Annotated[
        list[str] | None,
        typer.Option(help="A member organisation id to publish to (repeat); default: all."),
    ] = None,
    note: Annotated[str | None, typer.Option(help="A note for the readers.")] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """Publish a release your organisation paid for (a governance client)."""
    with _client(hub, client_id, client_secret) as client:
        published = client.publish(query_id, title=title, audience=to or "all", note=note)
    if as_json:
        _echo_json(published.model_dump(mode="json"))
        return
    console().print(f"{published.outcome or 'published'}: {published.id} "
                    f"({escape(published.title)}) to {escape(_audience(published))}")


@app.command()
@user_errors
def withdraw(
    release_id: Annotated[str, typer.Argument(help="A published release id (pub_...).")],
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
) -> None:
    """Withdraw a publication of your organisation (a governance client)."""
    with _client(hub, client_id, client_secret) as client:
        client.withdraw(release_id)
    console().print(f"withdrawn: {release_id}")
