"""The query engine: the exact aggregates of an authorised plan, in one DuckDB query.

The engine is an adapter: it takes a :class:`~hub.query.plan.QueryPlan` (already authorised,
its cost already debited) and the :class:`Part` s a release needs per group, and returns exact
integers (or, for quantiles, the clamped values) per group. Noise, key selection and ranking
are added afterwards (``hub.query.release``); nothing here is ever released as is.

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
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import structlog

from hub.contracts.model import FieldType
from hub.engines import cluster_runner
from hub.engines.runner import DuckRunner, Location
from hub.errors import NotFound, OutOfCapacity, Unavailable
from hub.ingest.service import IngestService
from hub.ingest.units import PARTNER_COLUMN, SEQ_COLUMN, UNIT_COLUMN, FixedColumn
from hub.query.bounds import (
    Bound,
    BoundCuts,
    period_key,
    persons_source,
)
from hub.query.plan import QueryPlan
from hub.query.sql import Part, compile_plan, compile_subtracted, subtractable
from hub.settings import Settings
from hub.storage.objects import ObjectStore
from hub.storage.sandbox import DuckLimits, sandboxed_duckdb

__all__ = ["QueryEngine"]

_log = structlog.get_logger("hub.query.engine")
#: Seconds a prefetched list of extracts serves the query that prefetched it.
PREFETCH_FRESH = 1.0


@dataclass(frozen=True)
class _Files:
    """The visible extracts of a dataset as its runner reads them (local files, or where
    the cluster reads them: ``Runner.locate``), and what the SQL needs of them."""

    ids: list[str]
    paths: list[Location]
    columns: frozenset[str]  # the union of their columns
    uniform: bool  # every file has the same columns (no need to match them by name)
    fixed: dict[str, FixedColumn]  # fixed-point columns every file has alike
    persons: Path | None = None  # units linked into persons (hub.ingest.linkage)

    @property
    def readable(self) -> list[Location]:
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
        self._sandboxes = _Sandboxes(self._limits, settings.data_dir)
        self._runner = cluster_runner(settings) or DuckRunner(self._limits,
                                                              self._sandboxes.cursor)
        self._cuts = BoundCuts(settings.work_dir / "cache" / "bounds", self._runner)
        # object key -> its columns and fixed-point columns (committed files are immutable)
        self._layouts: dict[str, _Layout] = {}
        # this thread's last prefetch: (dataset, files, time.monotonic())
        self._prefetched = threading.local()

    @property
    def runner(self) -> str:
        """What runs the queries: ``duckdb`` or ``spark`` (``TAHUB_ENGINE``)."""
        return self._runner.name

    def close(self) -> None:
        """Close the DuckDB databases kept open between queries (and the Spark session)."""
        self._runner.close()
        self._sandboxes.close()

    def partners(self, dataset: str) -> int:
        """How many distinct organisations have a visible extract of ``dataset``."""
        return len({e.org for e in self._ingest.visible_extracts(dataset)})

    def prefetch(self, dataset: str) -> None:
        """Make every visible extract of ``dataset`` a local file (an S3 store's cache), so
        that an unreachable store refuses the query before its cost is charged. The next
        :meth:`groups` of ``dataset`` on this thread (the query's own, right after its
        charge) uses these files instead of reading the dataset's state again, if it comes
        within :data:`PREFETCH_FRESH` seconds (no older list of extracts than a query's own
        run would use). A Spark cluster that cannot be reached refuses it here too."""
        self._runner.ready()
        self._prefetched.files = (dataset, self._files(dataset), time.monotonic())

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
        prefetched = getattr(self._prefetched, "files", None)
        self._prefetched.files = None  # used once, and only fresh (at most a second old)
        files = (prefetched[1] if prefetched is not None and prefetched[0] == plan.dataset
                 and time.monotonic() - prefetched[2] < PREFETCH_FRESH else
                 self._files(plan.dataset))
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
            rows = self._runner.fetch(sql, params, files.readable)
        except (duckdb.Error, OSError) as exc:
            _log.error("engine.contributions_failed", error=type(exc).__name__)
            raise Unavailable("the contributions could not be counted; retry later") from exc
        return [(int(a), int(b), int(c)) for a, b, c in rows]

    # -- helpers -------------------------------------------------------------------------
    def _files(self, dataset: str) -> _Files:
        """The visible extracts' files as the runner reads them, the union of their columns,
        whether every file has the same columns, and the fixed-point columns every file has
        with the same clamp and decimals."""
        ids: list[str] = []
        paths: list[Location] = []
        layouts: list[_Layout] = []
        for extract in self._ingest.visible_extracts(dataset):
            key = extract.object_key
            try:
                layout = self._layouts.get(key)
                if layout is None:
                    layout = self._layouts[key] = _layout(extract.id, self._store, key)
                paths.extend(self._runner.locate(self._store, key))
            except NotFound as exc:  # withdrawn meanwhile
                raise Unavailable("the dataset changed while the query ran; retry") from exc
            layouts.append(layout)
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
            bound = self._bound(plan)
            # Public rows (hub.query.exact) are neither bounded nor linked into persons: their
            # exact answer is a function of the public rows alone, never of a unit's other
            # rows (which rows a bound keeps, or which units an identifier joins, depends on
            # the rows that are not public).
            exact = plan.public_rows is not None
            persons = None if exact else files.persons
            cuts = None if exact else self._cuts.cuts(
                plan.dataset, files.ids, files.paths, files.columns, bound, files.persons)
            dropped = None
            if cuts is not None and subtractable(plan, parts):
                dropped = self._cuts.dropped(plan.dataset, files.ids, files.paths,
                                             files.columns, bound, cuts, files.persons)
            if dropped is not None:
                compiled = compile_subtracted(plan, parts, files.paths, files.columns,
                                              union=not files.uniform, fixed=files.fixed,
                                              dropped=dropped)
            else:
                compiled = compile_plan(plan, parts, files.paths, files.columns,
                                        union=not files.uniform, fixed=files.fixed, cuts=cuts,
                                        persons=persons)
            read = [*files.readable, *(p for p in (cuts, dropped) if p is not None)]
            return self._runner.fetch(compiled.sql, compiled.params, read)
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


def _layout(extract_id: str, store: ObjectStore, key: str) -> _Layout:
    """The object's columns and fixed-point columns; refused if it lacks the bounding
    columns (hub.ingest.units)."""
    try:
        schema = store.schema(key)
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
