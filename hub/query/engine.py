"""The query engine: the exact aggregates of an authorised plan, in one DuckDB query.

The engine is an adapter: it takes a :class:`~hub.query.plan.QueryPlan` (already authorised,
its cost already debited) and the :class:`Part` s a release needs per group, and returns exact
integers (or, for quantiles, the clamped values) per group. Noise, key selection and ranking
are added afterwards (``hub.query.release``); nothing here is ever released as is.

One query over ``read_parquet([visible extracts of the dataset], union_by_name=true)``
(a column missing from an older contract version reads as NULL, i.e. unknown):

* contribution bounding keeps each unit's ``max_rows`` rows of smallest keyed priority
  (``__prio``, fixed at commit; per period for per-period plans): a left join with the heavy
  units' cuts of :mod:`hub.query.bounds`, computed once per dataset state and bound, and
  ``cut IS NULL OR __prio <= cut`` (no join at all when no unit has more rows);
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
* :meth:`QueryEngine.groups` returns the groups present (for selected keys and ranking);
  :meth:`QueryEngine.aggregate` lays them onto the full public key grid, zeros included, in
  the order of ``itertools.product`` over the dimensions' keys. A group whose key is not a
  public key of the plan is dropped (it cannot exist after ingest's checks, and must not
  create a cell anyway).

Identifiers in the SQL are only the contract's own field names (looked up in
``plan.contract``, quoted) and the engine's own ``__unit``/``__seq``/``__partner``/``__prio``
columns; a name that is not a field of the contract is refused before any SQL is built. Each
query opens a fresh in-process DuckDB connection (2 threads, a memory limit, no extensions).

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

DuckDB and file errors are translated to :class:`~hub.errors.Unavailable`; an extract
committed before contribution bounding existed (no ``__unit``/``__seq`` columns) is refused
with ``Unavailable(rule="bounding")`` rather than silently read as empty.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import structlog

from hub.contracts.model import ContractField, FieldType
from hub.contracts.model import Role as FieldRole
from hub.contracts.validation import quote_ident
from hub.errors import InvalidInput, NotFound, OutOfCapacity, Unavailable
from hub.ingest.service import IngestService
from hub.ingest.units import PARTNER_COLUMN, PRIO_COLUMN, SEQ_COLUMN, UNIT_COLUMN, FixedColumn
from hub.query.bounds import (
    PERIOD_KEY,
    Bound,
    BoundCuts,
    kept_sql,
    period_key,
    persons_source,
)
from hub.query.plan import QueryPlan
from hub.settings import Settings
from hub.storage.objects import ObjectStore
from hub.storage.sandbox import DuckLimits, sandboxed_duckdb

__all__ = ["Compiled", "Part", "PartKind", "QueryEngine", "compile_plan"]

PartKind = Literal["count", "sum", "count_units", "linked_units", "values", "select_units"]
_KINDS = ("count", "sum", "count_units", "linked_units", "values", "select_units")
_log = structlog.get_logger("hub.query.engine")
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


@dataclass(frozen=True)
class _Files:
    """The visible extracts of a dataset as local files, and what the SQL needs of them."""

    ids: list[str]
    paths: list[Path]
    columns: frozenset[str]  # the union of their columns
    uniform: bool  # every file has the same columns (no need to match them by name)
    fixed: dict[str, FixedColumn]  # fixed-point columns every file has alike
    persons: Path | None = None  # units linked into persons (hub.ingest.linkage)

    @property
    def readable(self) -> list[Path]:
        """The files a query of them may read (its DuckDB sandbox's allowed paths)."""
        return [*self.paths, *([self.persons] if self.persons is not None else [])]


class _Shared:
    """One open sandbox (:func:`sandboxed_duckdb`) and the queries using it right now."""

    def __init__(self, limits: DuckLimits, read: frozenset[Path], empty: Path) -> None:
        # a copy of its own: DuckDB opens one file once per process, settings and all
        self._file = empty.with_name(f"{secrets.token_hex(8)}.duckdb")
        shutil.copyfile(empty, self._file)
        self._stack = ExitStack()
        self._stack.callback(self._file.unlink, missing_ok=True)
        self.con = self._stack.enter_context(sandboxed_duckdb(
            limits, read=sorted(read), database=self._file, read_only=True))
        self.users = 0
        self.retired = False

    def close(self) -> None:
        self._stack.close()


class _Sandboxes:
    """Locked DuckDB databases kept open between queries, one per set of readable files.

    Opening a sandboxed DuckDB database takes 15-30 ms (bench/query_dp.py), a fixed cost of
    every query when each opened its own. Here a query takes a cursor of the database that
    may read exactly its files (the visible extracts, the persons map, the cut file:
    the same ``allowed_paths`` as a sandbox of its own), opened by the first query of that
    set and shared by the next ones, each on its own cursor (DuckDB's way to use one
    database from several threads; they share its memory and thread limits, so that
    concurrent queries together stay within ``TAHUB_DUCKDB_MEMORY_LIMIT``). A commit
    changes the set, so the next query opens a new database; the least recently opened of
    more than ``KEEP`` are closed when their last query ends. Nothing a query does stays
    for the next one, even if its SQL were crafted (tests/hub/test_sandbox.py): the shared
    database is an empty DuckDB file opened read-only (no table, view or macro can be
    created in it; temporary ones die with their cursor), and the configuration is locked.
    """

    KEEP = 4

    def __init__(self, limits: DuckLimits, folder: Path) -> None:
        self._limits = limits
        # An empty database file, copied for each shared database, in a folder of this
        # engine's own: the copies are removed when closed; what a killed process left is
        # removed by the next engine to start.
        folder = folder / "sandbox"
        folder.mkdir(parents=True, exist_ok=True)
        for left in folder.iterdir():
            pid = left.name.split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(left, ignore_errors=True)
        self._folder = folder / f"{os.getpid()}-{secrets.token_hex(4)}"
        self._empty = self._folder / "empty.duckdb"
        self._lock = threading.Lock()
        self._open: OrderedDict[frozenset[Path], _Shared] = OrderedDict()

    @contextmanager
    def cursor(self, read: Iterable[Path]) -> Iterator[duckdb.DuckDBPyConnection]:
        key = frozenset(read)
        with self._lock:
            shared = self._open.get(key)
            if shared is None:
                if not self._empty.exists():  # made now, or again if a cleaner removed it
                    self._folder.mkdir(parents=True, exist_ok=True)
                    duckdb.connect(str(self._empty)).close()
                shared = self._open[key] = _Shared(self._limits, key, self._empty)
                while len(self._open) > self.KEEP:
                    _, old = self._open.popitem(last=False)
                    self._retire(old)
            shared.users += 1
            cursor = shared.con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
            with self._lock:
                shared.users -= 1
                if shared.retired and shared.users == 0:
                    shared.close()

    def _retire(self, shared: _Shared) -> None:
        shared.retired = True
        if shared.users == 0:
            shared.close()

    def close(self) -> None:
        with self._lock:
            while self._open:
                self._retire(self._open.popitem()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class QueryEngine:
    """Exact aggregates of authorised plans over the committed extracts (module docstring)."""

    def __init__(self, *, store: ObjectStore, ingest: IngestService, settings: Settings) -> None:
        self._store = store
        self._ingest = ingest
        self._settings = settings
        self._limits = DuckLimits.of(settings)
        self._cuts = BoundCuts(settings.data_dir / "cache" / "bounds", self._limits)
        self._sandboxes = _Sandboxes(self._limits, settings.data_dir)
        # object key -> its columns and fixed-point columns (committed files are immutable)
        self._layouts: dict[str, _Layout] = {}

    def close(self) -> None:
        """Close the DuckDB databases kept open between queries."""
        self._sandboxes.close()

    def partners(self, dataset: str) -> int:
        """How many distinct organisations have a visible extract of ``dataset``."""
        return len({e.org for e in self._ingest.visible_extracts(dataset)})

    def prefetch(self, dataset: str) -> None:
        """Make every visible extract of ``dataset`` a local file (an S3 store's cache), so
        that an unreachable store refuses the query before its cost is charged."""
        self._files(dataset)

    def aggregate(self, plan: QueryPlan, parts: Sequence[Part]) -> list[list[Any]]:
        """One list per part, each with one entry per cell of the plan's public key grid.

        ``count``/``sum``/``count_units``/``linked_units`` give exact ints (sums are
        fixed-point ints of clamped values); ``values`` gives per cell the list of clamped
        float values. Only kept rows (contribution bounding, :mod:`hub.query.bounds`)
        passing the filters.
        """
        grid = _Grid(plan)
        out: list[list[Any]] = [
            [[] for _ in range(grid.cells)] if p.kind == "values" else [0] * grid.cells
            for p in parts
        ]
        for key, values in self.groups(plan, parts):
            cell = grid.index(key)
            if cell is None:  # pragma: no cover - groups() keeps public keys only
                continue
            for i, value in enumerate(values):
                out[i][cell] = value
        return out

    def groups(self, plan: QueryPlan, parts: Sequence[Part]
               ) -> list[tuple[tuple[str | None, ...], list[Any]]]:
        """The groups present in the kept rows: (key, one value per part), for keys inside
        the plan's public domain only (a group outside it cannot exist after ingest's
        checks, and must not appear anyway). For key selection and ranked queries."""
        files = self._files(plan.dataset)
        if not files.paths:
            compile_plan(plan, parts, [])  # refuses a plan that names no field, as always
            return []
        allowed = [set(d.keys) for d in plan.dimensions]
        dims = len(plan.dimensions)
        out = []
        for row in self._run(plan, parts, files):
            key = tuple(row[:dims])
            if not all(k in keys for k, keys in zip(key, allowed, strict=True)):
                continue
            values = [[float(v) for v in value or ()] if part.kind == "values"
                      else int(value or 0) for part, value in zip(parts, row[dims:],
                                                                    strict=True)]
            out.append((key, values))
        return out

    def contributions(self, dataset: str, period: str | None,
                      per_period: int | None = None) -> list[tuple[int, int, int]]:
        """Per unit: its visible rows; with ``period`` (a field name), its largest number of
        rows in one period, and the rows it has beyond ``per_period`` in its periods (summed).
        Inputs of DP releases (:mod:`hub.query.contributions`), never released as they are."""
        files = self._files(dataset)
        if not files.paths:
            return []
        src = "read_parquet(?, union_by_name = true)"
        params: list[Any] = [[str(p) for p in files.paths]]
        if files.persons is not None:
            src = persons_source(src, "?")
            params.append(str(files.persons))
        beyond = int(per_period) if per_period is not None else 0
        if period is None:
            sql = f"SELECT count(*), 0, 0 FROM {src} GROUP BY {UNIT_COLUMN}"
        else:
            sql = (f"SELECT sum(n), max(n), sum(greatest(n - {beyond}, 0)) FROM "
                   f"(SELECT {UNIT_COLUMN}, {period_key(period)}, count(*) AS n FROM {src} "
                   f"GROUP BY ALL) GROUP BY {UNIT_COLUMN}")
        try:
            with self._sandboxes.cursor(files.readable) as con:
                rows = con.execute(sql, params).fetchall()
        except (duckdb.Error, OSError) as exc:
            _log.error("engine.contributions_failed", error=type(exc).__name__)
            raise Unavailable("the contributions could not be counted; retry later") from exc
        return [(int(a), int(b), int(c)) for a, b, c in rows]

    # -- helpers -------------------------------------------------------------------------
    def _files(self, dataset: str) -> _Files:
        """The visible extracts' local files, the union of their columns, whether every file
        has the same columns, and the fixed-point columns every file has with the same
        clamp and decimals."""
        ids: list[str] = []
        paths: list[Path] = []
        layouts: list[_Layout] = []
        for extract in self._ingest.visible_extracts(dataset):
            try:
                path = self._store.local_path(extract.object_key)
            except NotFound as exc:  # withdrawn meanwhile
                raise Unavailable("the dataset changed while the query ran; retry") from exc
            layout = self._layouts.get(extract.object_key)
            if layout is None:
                layout = self._layouts[extract.object_key] = _layout(extract.id, path)
            layouts.append(layout)
            paths.append(path)
            ids.append(extract.id)
        columns = frozenset().union(*(names for names, _ in layouts))
        shared = dict(layouts[0][1]) if layouts else {}
        for _, fixed in layouts[1:]:
            shared = {k: c for k, c in shared.items() if fixed.get(k) == c}
        persons = self._ingest.persons(dataset) if paths else None
        return _Files(ids, paths, columns, len({names for names, _ in layouts}) <= 1, shared,
                      persons)

    def _bound(self, plan: QueryPlan) -> Bound:
        period = next((f.name for f in plan.contract.fields if f.type is FieldType.PERIOD),
                      None) if plan.per_period else None
        return Bound(plan.max_rows, period)

    def _run(self, plan: QueryPlan, parts: Sequence[Part],
             files: _Files) -> list[tuple[Any, ...]]:
        try:
            cuts = self._cuts.cuts(plan.dataset, files.ids, files.paths, files.columns,
                                   self._bound(plan), files.persons)
            compiled = compile_plan(plan, parts, files.paths, files.columns,
                                    union=not files.uniform, fixed=files.fixed, cuts=cuts,
                                    persons=files.persons)
            read = [*files.readable, *([cuts] if cuts is not None else [])]
            with self._sandboxes.cursor(read) as con:
                return con.execute(compiled.sql, compiled.params).fetchall()
        except duckdb.OutOfMemoryException as exc:
            raise OutOfCapacity(
                f"this query needs more memory than one DuckDB connection of the hub may use "
                f"({self._limits.memory_limit}), even spilling to disk: the hub's operator "
                "raises TAHUB_DUCKDB_MEMORY_LIMIT", rule="memory_limit",
                setting="TAHUB_DUCKDB_MEMORY_LIMIT", limit=self._limits.memory_limit) from exc
        except (duckdb.Error, OSError) as exc:
            _log.error("engine.query_failed", error=type(exc).__name__)
            raise Unavailable("the query could not run; retry later") from exc


_Layout = tuple[frozenset[str], dict[str, FixedColumn]]


def _layout(extract_id: str, path: Path) -> _Layout:
    """The file's columns and fixed-point columns; refused if it lacks the bounding columns
    (hub.ingest.units)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise Unavailable("the dataset changed while the query ran; retry") from exc
    names = frozenset(schema.names)
    if not {UNIT_COLUMN, SEQ_COLUMN, PARTNER_COLUMN} <= names:
        _log.error("engine.unbounded_extract", extract_id=extract_id)
        raise Unavailable(
            f"extract {extract_id} was committed before contribution bounding and cannot "
            "be queried; its partner must withdraw it and upload it again",
            rule="bounding",
        )
    fixed = {k: c for k, c in FixedColumn.parse(schema.metadata).items() if c.column in names}
    return names, fixed


class _Grid:
    """Mixed-radix index of a cell in itertools.product order over the dimensions' keys."""

    def __init__(self, plan: QueryPlan) -> None:
        self.dims = len(plan.dimensions)
        self.cells = math.prod(d.size for d in plan.dimensions)
        self._lookup = [{k: i for i, k in enumerate(d.keys)} for d in plan.dimensions]
        self._radix = [
            math.prod(d.size for d in plan.dimensions[i + 1:]) for i in range(self.dims)
        ]

    def index(self, key: Sequence[Any]) -> int | None:
        cell = 0
        for lookup, radix, k in zip(self._lookup, self._radix, key, strict=True):
            i = lookup.get(k)
            if i is None:
                return None
            cell += i * radix
        return cell


# -- compilation ----------------------------------------------------------------------------
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
    paths: Sequence[Path],
    columns: frozenset[str] | None = None,
    *,
    union: bool = True,
    fixed: Mapping[str, FixedColumn] | None = None,
    cuts: Path | None = None,
    persons: Path | None = None,
) -> Compiled:
    """The SQL and parameters of ``plan`` over the Parquet files ``paths`` (whose columns,
    together, are ``columns``; None: assume every contract field is there; ``fixed``: the
    fixed-point columns every file has; ``cuts``: the heavy units' cut file of
    :mod:`hub.query.bounds`, None when no unit has more rows than the bound; ``persons``:
    the dataset's person map of :mod:`hub.ingest.linkage`, None when no units are linked).

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
        prio = (f"coalesce(__t.{PRIO_COLUMN}, __t.{SEQ_COLUMN})"
                if columns is None or PRIO_COLUMN in columns else f"__t.{SEQ_COLUMN}")
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
                f"unnest(CASE WHEN len({listed}) > 0 THEN {listed} "
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
    ctes = f"base AS ({base})"
    rows = "base"
    if plan.route:  # each unit's missing stages from its other rows (module docstring)
        known = ", ".join(f"CASE WHEN count(DISTINCT {k}) = 1 THEN min({k}) END AS u{i}"
                          for i, k in enumerate(keys))
        filled = ", ".join(f"coalesce(b.{k}, u.u{i}) AS {k}" for i, k in enumerate(keys))
        ctes += (f", known AS (SELECT {UNIT_COLUMN}, {known} FROM base GROUP BY {UNIT_COLUMN})"
                 f", routes AS (SELECT {filled}, b.{UNIT_COLUMN}, b.{PARTNER_COLUMN} "
                 f"FROM base b JOIN known u USING ({UNIT_COLUMN}))")
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
