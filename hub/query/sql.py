"""The SQL of a query plan: what :mod:`hub.query.engine` runs over the committed extracts.

One query over ``read_parquet([visible extracts of the dataset], union_by_name=true)``
(a column missing from an older contract version reads as NULL, i.e. unknown):

* contribution bounding keeps each unit's ``max_rows`` rows of smallest keyed priority
  (``__prio``, fixed at commit; per period for per-period plans): a left join with the heavy
  units' cuts of :mod:`hub.query.bounds`, computed once per dataset state and bound, and
  ``cut IS NULL OR __prio <= cut`` (no join at all when no unit has more rows). A plan of
  counts and sums only joins nothing: :func:`compile_subtracted` takes the aggregates of
  every row minus those of the rows the bound drops, written once per dataset state and
  bound (:meth:`hub.query.bounds.BoundCuts.dropped`) when they are few;
* the plan's filters, with their values bound as parameters (``?``), never spliced. A filter
  on a grouped scalar dimension whose keys are all among the filter's values (as
  ``authorise`` makes them) is not evaluated per row at all: a row outside the filter can
  only fall in a group that is dropped (DuckDB would push a ``HAVING`` on the group keys back
  down to every row);
* ``GROUP BY`` the dimensions; a ``category_list`` dimension is unnested (one group per
  listed code; a NULL or empty list is the unknown key ``None``);
* for a route plan, each unit's route stages are first completed from its other kept rows
  (a stage a row leaves empty takes the unit's one known value, if its rows agree on one),
  and the groups count distinct (unit, route) pairs;
* the engine's ``groups`` returns the groups present (for selected keys and ranking); its
  ``aggregate`` lays them onto the full public key grid, zeros included, in the order of
  ``itertools.product`` over the dimensions' keys. A group whose key is not a
  public key of the plan is dropped (it cannot exist after ingest's checks, and must not
  create a cell anyway).

Identifiers in the SQL are only the contract's own field names (looked up in
``plan.contract``, quoted) and the engine's own ``__unit``/``__seq``/``__partner``/``__prio``
columns; a name that is not a field of the contract is refused before any SQL is built. The
engine runs the SQL on a cursor of a sandboxed DuckDB database (:mod:`hub.query.engine`).

Parts and their SQL (``lo``/``hi`` the clamp, ``d`` the fixed-point digits):

================ ==========================================================================
``count``        ``count(*)``
``sum``          ``sum(CAST(round(least(greatest(v, lo), hi) * 10^d) AS BIGINT))``
                 (the :func:`hub.privacy.noise.to_fixed` semantics; a NULL value adds
                 nothing), or ``sum(__fx_v)`` when every file stores that very expression
                 for this clamp and these decimals (:class:`hub.ingest.units.FixedColumn`)
``count_units``  ``count(DISTINCT __unit)`` (a two-level aggregate per (group, unit))
``linked_units`` units of the group seen at >= 2 distinct ``__partner``
``select_units`` units voting for the group: each unit votes for its ``limit`` groups with
                 the most kept rows, ties broken by a hash of the key (key selection)
``values``       the group's clamped non-NULL values (for quantiles)
================ ==========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hub.contracts.model import ContractField, FieldType
from hub.contracts.model import Role as FieldRole
from hub.contracts.validation import quote_ident
from hub.engines.runner import Location
from hub.errors import InvalidInput
from hub.ingest.units import PARTNER_COLUMN, UNIT_COLUMN, FixedColumn
from hub.query.bounds import PERIOD_KEY, kept_sql, period_key, persons_source, prio_sql
from hub.query.plan import QueryPlan

__all__ = ["Compiled", "Part", "PartKind", "compile_plan", "compile_subtracted", "subtractable"]

PartKind = Literal["count", "sum", "count_units", "linked_units", "values", "select_units"]
_KINDS = ("count", "sum", "count_units", "linked_units", "values", "select_units")
_MAX_DECIMALS = 15
_NULLS = {
    FieldType.CATEGORY_LIST: "CAST(NULL AS VARCHAR[])",
    FieldType.NUMBER: "CAST(NULL AS DOUBLE)",
    FieldType.INTEGER: "CAST(NULL AS BIGINT)",
}


@dataclass(frozen=True)
class Part:
    """One exact aggregate the service needs per cell."""

    kind: PartKind
    field: str | None = None  # sum / values: the measure field
    clamp: tuple[float, float] | None = None
    decimals: int = 0  # sum: fixed-point digits (hub.privacy.to_fixed semantics)
    limit: int = 0  # select_units: the keys each unit votes for


@dataclass(frozen=True)
class Compiled:
    """The SQL of one plan: text (identifiers from the contract only) and bound parameters.

    The result has one row per group: the dimension keys, then one column per part.
    """

    sql: str
    params: list[Any]


def _field(plan: QueryPlan, name: str | None, what: str) -> ContractField:
    """The contract's own definition of ``name``; anything else never reaches SQL."""
    if name is None:
        raise InvalidInput(f"{what} needs a field", field=what)
    try:
        return plan.contract.field(name)
    except KeyError:
        raise InvalidInput(
            f"{what}: {name[:64]!r} is not a field of {plan.dataset}", field=what
        ) from None


def _column(f: ContractField, columns: frozenset[str] | None) -> str:
    """The column holding ``f`` (the partner field is the hub's ``__partner``), or a typed
    NULL (unknown) when no file has it (a field newer than every visible extract)."""
    if f.role is FieldRole.PARTNER:
        return PARTNER_COLUMN
    if columns is not None and f.name not in columns:
        return _NULLS.get(f.type, "CAST(NULL AS VARCHAR)")
    return quote_ident(f.name)


def _fixed_sql(value: str, part: Part, params: list[Any],
               stored: FixedColumn | None = None) -> str:
    lo, hi = _clamp(part)
    if not 0 <= part.decimals <= _MAX_DECIMALS:
        raise InvalidInput(f"decimals must be in 0..{_MAX_DECIMALS}", field="decimals")
    if stored is not None and stored.clamp == (lo, hi) and stored.decimals == part.decimals:
        return quote_ident(stored.column)  # the same expression, evaluated at commit
    params += [lo, hi, float(10**part.decimals)]
    return FixedColumn.sql(value, "?", "?", "?")


def _clamped_sql(value: str, part: Part, params: list[Any]) -> str:
    lo, hi = _clamp(part)
    params += [lo, hi]
    return f"least(greatest(CAST({value} AS DOUBLE), ?), ?)"


def _clamp(part: Part) -> tuple[float, float]:
    if part.clamp is None:
        raise InvalidInput(f"a {part.kind} part needs a clamp range", field="clamp")
    lo, hi = (float(x) for x in part.clamp)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise InvalidInput("the clamp range must be finite with lo <= hi", field="clamp")
    return lo, hi


def compile_plan(
    plan: QueryPlan,
    parts: Sequence[Part],
    paths: Sequence[Location],
    columns: frozenset[str] | None = None,
    *,
    union: bool = True,
    fixed: Mapping[str, FixedColumn] | None = None,
    cuts: Path | None = None,
    persons: Path | None = None,
    rows_name: str = "base",
) -> Compiled:
    """The SQL and parameters of ``plan`` over the Parquet files ``paths`` (whose columns,
    together, are ``columns``; None: assume every contract field is there; ``fixed``: the
    fixed-point columns every file has; ``cuts``: the heavy units' cut file of
    :mod:`hub.query.bounds`, None when no unit has more rows than the bound; ``persons``:
    the dataset's person map of :mod:`hub.ingest.linkage`, None when no units are linked;
    ``rows_name``: the name of the statement's table of rows, distinct for each statement
    that one query unites, as Spark wants it).

    Parameters, in textual order: the parts' clamps and scales, the file list, the person
    map, the cut file,
    then the values of the filters evaluated per row (one on a grouped scalar dimension
    whose keys it covers only drops grid cells, see the module docstring). Only contract
    names (quoted) and the engine's own columns appear as identifiers.
    """
    for part in parts:
        if part.kind not in _KINDS:
            raise InvalidInput(f"unknown part {part.kind!r}", field="parts")
    if plan.route and any(p.kind not in ("count_units", "linked_units", "select_units")
                          for p in parts):
        raise InvalidInput("a route counts distinct units", field="parts")
    votes = [p for p in parts if p.kind == "select_units"]
    if len(votes) > 1 or any(p.limit < 1 for p in votes):
        raise InvalidInput("one select_units part, with a positive limit", field="parts")
    dims = [_field(plan, d.name, "group_by") for d in plan.dimensions]
    filters = [(_field(plan, f.field, "filters"), f) for f in plan.filters]
    scan_params: list[Any] = [[str(p) for p in paths]]
    where = []
    source = "read_parquet(?" + (", union_by_name = true)" if union else ")")
    if persons is not None:  # units that share an identifier count as one person
        source = persons_source(source, "?")
        scan_params.append(str(persons))
    source += " AS __t"
    if cuts is not None:
        prio = prio_sql(columns, "__t")
        on = f"__c.{UNIT_COLUMN} = __t.{UNIT_COLUMN}"
        if plan.per_period:
            period = next(f.name for f in plan.contract.fields if f.type is FieldType.PERIOD)
            on += f" AND __c.{PERIOD_KEY} = {period_key(period, '__t')}"
        source += f" LEFT JOIN read_parquet(?) AS __c ON {on}"
        scan_params.append(str(cuts))
        where.append(kept_sql(prio, "__t", "__c", persons is not None))
    scalar_keys = {d.name: set(d.keys) for d in plan.dimensions
                   if d.type is not FieldType.CATEGORY_LIST}
    for f, fp in filters:
        grid_keys = scalar_keys.get(f.name)
        if grid_keys is not None and grid_keys <= set(fp.values):  # drops cells (docstring)
            continue
        col = _column(f, columns)
        if f.type is FieldType.CATEGORY_LIST:
            where.append(f"list_has_any({col}, CAST(? AS VARCHAR[]))")
        else:
            where.append(f"list_contains(CAST(? AS VARCHAR[]), {col})")
        scan_params.append(list(fp.values))
    # The group keys: k0, k1, ...; list dimensions unnested by lateral joins (cross product).
    select = []
    laterals = []
    for i, f in enumerate(dims):
        col = _column(f, columns)
        if f.type is FieldType.CATEGORY_LIST:
            listed = f"list_distinct({col})"
            laterals.append(
                f"unnest(CASE WHEN array_length({listed}) > 0 THEN {listed} "
                f"ELSE [NULL::VARCHAR] END) AS __l{i}(k)"
            )
            select.append(f"__l{i}.k AS k{i}")
        else:
            select.append(f"CAST({col} AS VARCHAR) AS k{i}")
    part_params: list[Any] = []
    values: list[str] = []  # per part, the per-row expression it aggregates (v0, v1, ...)
    for j, part in enumerate(parts):
        if part.kind in ("sum", "values"):
            f = _field(plan, part.field, "measures")
            col = _column(f, columns)
            expr = (_fixed_sql(col, part, part_params, (fixed or {}).get(f.name))
                    if part.kind == "sum" else _clamped_sql(col, part, part_params))
            values.append(f"{expr} AS v{j}")
    two_level = any(p.kind in ("count_units", "linked_units", "select_units") for p in parts)
    # Read the unit and partner columns only when a measure needs them.
    unit_cols = [f"__t.{UNIT_COLUMN}", f"__t.{PARTNER_COLUMN}"]
    select += [*values, *unit_cols] if two_level else values
    select = select or ["NULL AS __row"]  # a bare count(*) with no dimensions
    keys = [f"k{i}" for i in range(len(dims))]
    base = (
        f"SELECT {', '.join(select)} FROM {source}"
        + "".join(f", {lat}" for lat in laterals)
        + f" WHERE {' AND '.join(where) or 'TRUE'}"
    )
    ctes = f"{rows_name} AS ({base})"
    rows = rows_name
    if plan.route:  # each unit's missing stages from its other rows (module docstring)
        known = ", ".join(f"CASE WHEN count(DISTINCT {k}) = 1 THEN min({k}) END AS u{i}"
                          for i, k in enumerate(keys))
        filled = ", ".join(f"coalesce(b.{k}, u.u{i}) AS {k}" for i, k in enumerate(keys))
        ctes += (f", known AS (SELECT {UNIT_COLUMN}, {known} FROM {rows_name} "
                 f"GROUP BY {UNIT_COLUMN})"
                 f", routes AS (SELECT {filled}, b.{UNIT_COLUMN}, b.{PARTNER_COLUMN} "
                 f"FROM {rows_name} b JOIN known u USING ({UNIT_COLUMN}))")
        rows = "routes"
    aggs = []
    if two_level:  # per (cell, unit) first, then per cell
        inner = []
        for j, part in enumerate(parts):
            if part.kind == "count":
                inner.append(f"count(*) AS a{j}")
                aggs.append(f"sum(a{j})")
            elif part.kind == "sum":
                inner.append(f"sum(v{j}) AS a{j}")
                aggs.append(f"sum(a{j})")
            elif part.kind == "values":
                inner.append(f"list(v{j}) FILTER (WHERE v{j} IS NOT NULL) AS a{j}")
                aggs.append(f"flatten(list(a{j}) FILTER (WHERE a{j} IS NOT NULL))")
            elif part.kind == "count_units":
                aggs.append("count(*)")
            elif part.kind == "linked_units":
                aggs.append("count(*) FILTER (WHERE __linked)")
            else:  # select_units: the unit's keys with most rows, ties by a hash of the key
                aggs.append(f"count(*) FILTER (WHERE __vote <= {int(part.limit)})")
        inner.append(f"min({PARTNER_COLUMN}) <> max({PARTNER_COLUMN}) AS __linked")
        inner.append("count(*) AS __n")
        group = ", ".join([*keys, UNIT_COLUMN])
        ranked = ", ".join(f"coalesce({k}, chr(0))" for k in keys) or "''"
        source_rows = (
            f"(SELECT *, row_number() OVER (PARTITION BY {UNIT_COLUMN} ORDER BY __n DESC, "
            f"md5(concat_ws(chr(31), {ranked}))) AS __vote FROM "
            f"(SELECT {', '.join([*keys, UNIT_COLUMN, *inner])} FROM {rows} "
            f"GROUP BY {group}))"
            if votes else
            f"(SELECT {', '.join([*keys, *inner])} FROM {rows} GROUP BY {group})")
    else:
        for j, part in enumerate(parts):
            aggs.append({
                "count": "count(*)",
                "sum": f"sum(v{j})",
                "values": f"list(v{j}) FILTER (WHERE v{j} IS NOT NULL)",
            }[part.kind])
        source_rows = rows
    outer = ", ".join([*keys, *aggs]) or "count(*)"
    group_by = f" GROUP BY {', '.join(keys)}" if keys else ""
    sql = f"WITH {ctes} SELECT {outer} FROM {source_rows}{group_by}"
    return Compiled(sql, [*part_params, *scan_params])


def subtractable(plan: QueryPlan, parts: Sequence[Part]) -> bool:
    """Whether the kept rows' aggregates are the unbounded ones minus the dropped rows' (a
    count or a sum is; a per-unit part, a list of values or a route is not)."""
    return not plan.route and all(p.kind in ("count", "sum") for p in parts)


def compile_subtracted(
    plan: QueryPlan,
    parts: Sequence[Part],
    paths: Sequence[Location],
    columns: frozenset[str] | None = None,
    *,
    union: bool = True,
    fixed: Mapping[str, FixedColumn] | None = None,
    dropped: Path,
) -> Compiled:
    """The SQL of a :func:`subtractable` plan without contribution bounding's join: its
    aggregates over every row of ``paths`` minus the same aggregates over ``dropped``, the
    rows the bound drops (:meth:`hub.query.bounds.BoundCuts.dropped`), per group, in exact
    integers (a sum is of fixed-point integers). A hidden count of the kept rows leaves out
    the groups that only dropped rows fall in, as the bounded query has no such group.
    Same result rows, and parameters in textual order, as :func:`compile_plan` with cuts."""
    counted = [*parts, Part("count")]
    every = compile_plan(plan, counted, paths, columns, union=union, fixed=fixed)
    gone = compile_plan(plan, counted, [dropped], columns, union=False, fixed=fixed,
                        rows_name="gone_rows")
    keys = [f"k{i}" for i in range(len(plan.dimensions))]
    aggs = [f"a{j}" for j in range(len(counted))]
    names = ", ".join([*keys, *aggs])
    negated = ", ".join([*keys, *(f"-{a}" for a in aggs)])
    totals = ", ".join([*keys, *(f"sum({a})" for a in aggs[:-1])])
    grouped = f" GROUP BY {', '.join(keys)} HAVING sum({aggs[-1]}) > 0" if keys else ""
    sql = (f"SELECT {totals} FROM (SELECT * FROM ({every.sql}) AS __every({names}) "
           f"UNION ALL SELECT {negated} FROM ({gone.sql}) AS __gone({names})){grouped}")
    return Compiled(sql, [*every.params, *gone.params])
