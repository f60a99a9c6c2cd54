"""``tahub query``: an analyst's command line, a thin shell over :class:`AnalystClient`.

::

    tahub query run DATASET --by DIM... --measure M... --filter F...
                    --cost C | --target HW | --target-gap G [--confidence P]
                    [--top K [--top-by MEASURE]] [--route] [--keys auto|public|selected]
                    [--bounding auto|total|per_period]
                    [--sort MEASURE] [--limit N] [--include-uncertain]
                    [--csv FILE] [--parquet FILE] [--json]
    tahub query estimate DATASET ...the same question...     cost, accuracy, key threshold,
                                                               ranking gap; spends nothing
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
``publish`` and ``withdraw`` need ``governance``); or a person signed in with ``tahub
login``, whose profile (``--profile``, ``TAHUB_PROFILE``) also gives the hub when neither
``--hub`` nor ``TAHUB_HUB_URL`` does. A refusal prints the hub's reason with its status, code
and the rule that refused, and exits 1, without a traceback.

A release is printed honestly (connectors.analyst.display): in the hub's order, or for a top
list (``--sort``, or a ranked query) by :meth:`QueryResult.top`: rank order with each rank's
interval, else the lower end of the 95% interval, never the noisy value. A cell whose
interval holds zero is marked ``~`` (not distinguishable from zero) and left out of a top
list unless ``--include-uncertain``. When keys were selected, what an absent key means is
printed; so is how rows were bounded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from connectors.analyst.client import AnalystClient, parse_filter
from connectors.analyst.display import show_estimate, show_result
from connectors.analyst.result import PublishedRelease, QueryResult, format_number
from connectors.common.amounts import amount
from connectors.common.cli import (
    ClientId,
    ClientSecret,
    Hub,
    Profile,
    console,
    user_errors,
)
from connectors.common.names import Names
from hub.errors import ConfigError

__all__ = ["app"]

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
TargetGap = Annotated[
    float | None,
    typer.Option(
        help="Instead of --cost, for a --top query: the score gap two keys need to be put in "
        "the right order with probability --confidence; the hub solves for the cost.",
    ),
]
Confidence = Annotated[
    float | None, typer.Option(help="With --target-gap: the probability wanted (hub: 0.9).")
]
TopK = Annotated[
    int | None,
    typer.Option("--top", help="Rank the K largest keys (OpenDP's noisy top-k); printed in "
                 "rank order with each rank's 90% interval."),
]
TopBy = Annotated[
    str | None,
    typer.Option("--top-by", help="The measure that ranks --top (a --measure, e.g. "
                 "linked_units; default the first)."),
]
Route = Annotated[
    bool,
    typer.Option("--route", help="Group by route stages assembled per person across "
                 "partners (--by: the stages, default all); measures count_units, "
                 "linked_units."),
]
Keys = Annotated[
    str | None,
    typer.Option(help="public: every key of the grid, zeros included; selected: only keys "
                 "a DP threshold on distinct units chose; auto (default): the policy decides."),
]
BoundingOpt = Annotated[
    str | None,
    typer.Option("--bounding", help="total (max_rows per unit), per_period (trends) or auto "
                 "(default)."),
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
    str | None,
    typer.Option(help="A top list by this measure: the lower end of its 95% interval, largest "
                 "first, never the noisy value (a ranked query keeps its rank order)."),
]
Limit = Annotated[int, typer.Option(help="Cells shown (0 = all); files get all.")]
IncludeUncertain = Annotated[
    bool,
    typer.Option("--include-uncertain", "--all",
                 help="Keep, in a top list, cells not distinguishable from zero (their 95% "
                 "interval holds 0)."),
]


def _client(hub: str | None, client_id: str | None, client_secret: str | None,
            profile: str | None) -> AnalystClient:
    return AnalystClient.from_env(hub, client_id, client_secret, profile=profile)


def _question(
    by: list[str] | None,
    measures: list[str] | None,
    filters: list[str] | None,
    cost: str | None,
    target: float | None,
    target_measure: int,
    allow_negative: bool,
    consistent_totals: bool,
    *,
    target_gap: float | None = None,
    confidence: float | None = None,
    top: int | None = None,
    top_by: str | None = None,
    route: bool = False,
    keys: str | None = None,
    bounding: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of AnalystClient.query/estimate for these options."""
    chosen: dict[str, Any] = {}
    for text in filters or []:
        name, value = parse_filter(text)
        if name in chosen:
            raise ConfigError(f"--filter {name}=... is given twice: list its codes once, "
                              "separated by commas", field="filters")
        chosen[name] = value
    if target is not None and target_gap is not None:
        raise ConfigError("give --target (a half-width) or --target-gap (a ranking's "
                          "accuracy), not both", field="target")
    if confidence is not None and target_gap is None:
        raise ConfigError("--confidence goes with --target-gap", field="confidence")
    wanted: dict[str, Any] | None = None
    if target is not None:
        wanted = {"ci_halfwidth": target, "measure": target_measure}
    elif target_gap is not None:
        wanted = {"top_gap": target_gap}
        if confidence is not None:
            wanted["confidence"] = confidence
    return {
        "group_by": by or [],
        "measures": measures or ["count"],
        "filters": chosen,
        "cost": cost,
        "target": wanted,
        "postprocess": {"nonnegative": not allow_negative,
                        "consistent_totals": consistent_totals},
        "top": top,
        "by": top_by,
        "route": route,
        "keys": keys,
        "bounding": bounding,
    }


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _output(result: QueryResult, *, as_json: bool, sort: str | None, limit: int,
            csv: Path | None, parquet: Path | None, include_uncertain: bool = False) -> None:
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
        show_result(result, sort=sort, limit=limit, include_uncertain=include_uncertain)
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
    target_gap: TargetGap = None,
    confidence: Confidence = None,
    top: TopK = None,
    top_by: TopBy = None,
    route: Route = False,
    keys: Keys = None,
    bounding: BoundingOpt = None,
    allow_negative: AllowNegative = False,
    consistent_totals: ConsistentTotals = False,
    csv: CsvOut = None,
    parquet: ParquetOut = None,
    sort: SortBy = None,
    limit: Limit = 40,
    include_uncertain: IncludeUncertain = False,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Run a DP query: spends its cost from your budget (a repeated question is free)."""
    question = _question(by, measure, filter_, cost, target, target_measure, allow_negative,
                         consistent_totals, target_gap=target_gap, confidence=confidence,
                         top=top, top_by=top_by, route=route, keys=keys, bounding=bounding)
    with _client(hub, client_id, client_secret, profile) as client:
        result = client.query(dataset, **question)
    _output(result, as_json=as_json, sort=sort, limit=limit, csv=csv, parquet=parquet,
            include_uncertain=include_uncertain)


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
    target_gap: TargetGap = None,
    confidence: Confidence = None,
    top: TopK = None,
    top_by: TopBy = None,
    route: Route = False,
    keys: Keys = None,
    bounding: BoundingOpt = None,
    allow_negative: AllowNegative = False,
    consistent_totals: ConsistentTotals = False,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """What a query would cost and how accurate it would be; spends nothing."""
    question = _question(by, measure, filter_, cost, target, target_measure, allow_negative,
                         consistent_totals, target_gap=target_gap, confidence=confidence,
                         top=top, top_by=top_by, route=route, keys=keys, bounding=bounding)
    with _client(hub, client_id, client_secret, profile) as client:
        est = client.estimate(dataset, **question)
    if as_json:
        _echo_json(est.model_dump(mode="json", by_alias=True))
    else:
        show_estimate(est)


@app.command()
@user_errors
def budget(
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset.")] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Your organisation's privacy budget: spent and left, per dataset (as decimals; exact
    with --json)."""
    with _client(hub, client_id, client_secret, profile) as client:
        balances = [client.budget(dataset)] if dataset else client.budgets()
    if as_json:
        _echo_json([b.model_dump(mode="json", by_alias=True) for b in balances])
        return
    table = Table(title="Your privacy budget (budgets never renew by themselves)")
    for column in ("dataset", "measure", "you spent", "you have left", "month left",
                   "all members left", "per query", "next query at most",
                   "cumulative loss (all members)", "delta left (yours)"):
        table.add_column(column)
    def shown(text: str | None, empty: str = "") -> str:
        return amount(text, exact=True) if text else empty

    for b in balances:
        cumulative = "0"
        if (b.cumulative is not None and b.cumulative.epsilon is not None
                and b.cumulative.amount not in (None, "0")):
            cumulative = f"{shown(b.cumulative.amount)} (epsilon {b.cumulative.epsilon:.4g}"
            cumulative += f", delta {b.cumulative.delta:.3g})" if b.cumulative.delta else ")"
        table.add_row(b.dataset, b.measure, shown(b.member.spent, "0"), shown(b.member.left),
                      shown(b.month.left, "no cap"), shown(b.global_.left), shown(b.per_query),
                      shown(b.can_spend), cumulative,
                      "none allowed" if b.delta is None else shown(b.delta.member.left))
    console().print(table)


@app.command()
@user_errors
def policies(
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """What you may ask: per dataset, the policy rules that apply to you."""
    with _client(hub, client_id, client_secret, profile) as client:
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
                    low, high = (format_number(x) for x in m["clamp"])
                    text += f" (clamped to {low}..{high})"
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
    profile: Profile = None,
) -> None:
    """Your organisation's queries: shape, cost and status (never values)."""
    with _client(hub, client_id, client_secret, profile) as client:
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
    include_uncertain: IncludeUncertain = False,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """A past release of your organisation again, at no cost."""
    with _client(hub, client_id, client_secret, profile) as client:
        result = client.release(query_id)
    _output(result, as_json=as_json, sort=sort, limit=limit, csv=csv, parquet=parquet,
            include_uncertain=include_uncertain)


def _audience(p: PublishedRelease, names: Names | None = None) -> str:
    if isinstance(p.audience, list):
        return ", ".join(names.org(o) if names else o for o in p.audience)
    return "every member" if p.audience == "all" else "named members (you among them)"


def _names(client: AnalystClient, found: list[PublishedRelease]) -> Names | None:
    """Organisation names, when a publication of the caller's names its audience."""
    if not any(isinstance(p.audience, list) for p in found):
        return None
    return Names.from_directory(client.directory())


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
    profile: Profile = None,
) -> None:
    """The catalogue: releases published to your organisation (reading them is free)."""
    with _client(hub, client_id, client_secret, profile) as client:
        found = client.releases()
        names = None if as_json else _names(client, found)
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
                      r.publisher or "", _audience(r, names))
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
    include_uncertain: IncludeUncertain = False,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """A published release with every cell, at no cost."""
    with _client(hub, client_id, client_secret, profile) as client:
        result = client.release(release_id)
    _output(result, as_json=as_json, sort=sort, limit=limit, csv=csv, parquet=parquet,
            include_uncertain=include_uncertain)


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
    profile: Profile = None,
) -> None:
    """Publish a release your organisation paid for (a governance client)."""
    with _client(hub, client_id, client_secret, profile) as client:
        published = client.publish(query_id, title=title, audience=to or "all", note=note)
        names = None if as_json else _names(client, [published])
    if as_json:
        _echo_json(published.model_dump(mode="json"))
        return
    console().print(f"{published.outcome or 'published'}: {published.id} "
                    f"({escape(published.title)}) to {escape(_audience(published, names))}")


@app.command()
@user_errors
def withdraw(
    release_id: Annotated[str, typer.Argument(help="A published release id (pub_...).")],
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Withdraw a publication of your organisation (a governance client)."""
    with _client(hub, client_id, client_secret, profile) as client:
        client.withdraw(release_id)
    console().print(f"withdrawn: {release_id}")
