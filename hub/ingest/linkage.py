"""Persons across partners and datasets: units that share an identifier are one person.

A contract's privacy-unit field and its **link** fields (role ``link``: an IBAN, a phone
number, an e-mail address, a document number) are pseudonymised by every partner's connector
with the same network key, so the same identifier is the same token at every partner. Per
dataset, :mod:`hub.ingest.units` numbers each row's *anchor* (its first non-empty identifier
token) as ``__unit``. Here the hub resolves **persons**: the connected components of the
graph whose nodes are the anchors of every dataset and the identifiers (``kind:token``,
so that a phone never meets an equal-looking document number), with an edge between a row's
anchor and each identifier on that row. Two bank customers with different IBANs who gave the
same phone number are one person, and so is a money-transfer sender with that phone.

**What a query sees.** For each dataset, a Parquet file maps every ``__unit`` whose person
holds other units of that dataset to the person's id: the smallest ``__unit`` of the
dataset in the component (a function of the component alone). Queries read
``coalesce(person, __unit)`` as the unit (:mod:`hub.query.engine`), so contribution bounding,
distinct units, linked units (seen at >= 2 partners) and route assembly all count persons.

**Why the privacy argument holds** (``docs/privacy.md``): neighbouring datasets differ by one
*person*, i.e. one whole component with all its rows in every dataset. A component is
closed: none of its identifiers appears on a row of another component (else they would be
one). Removing it therefore removes only its own rows and edges and leaves every other
component exactly as it was (same members, same id, same kept rows), and each person keeps
at most ``max_rows`` rows. A data-dependent break-up of large components (say, ignoring a
phone shared by more than K anchors) would *not* be stable: removing one person can bring a
shared phone under K and merge hundreds of others, so a release could change by far more
than one person's rows. Large components therefore stay **one unit** (a hub phone makes
hundreds of accounts weigh as one person: over-protection, a loss of utility, never of
privacy); those with more than ``max_tokens`` identifiers are reported
(:meth:`LinkIndex.report`, ``tahub admin links``) so that governance can put the shared
identifiers on the **stop list** (``TAHUB_LINK_STOP_LIST``: tokens that link nothing),
a data-independent rule decided outside any query.

**Incremental.** The index keeps, in ``<data_dir>/index/links/links.duckdb``, each node's
component label (the smallest node id of its component, so the labels do not depend on the
order of arrival) and the set of extracts it holds. A state that adds extracts to the held
ones unions only the new edges (scipy's connected components over the labels they touch); a
withdrawal, or a changed stop list, rebuilds from the visible extracts. Because labels are
canonical, both paths give the same persons (tested). The index is derived data: any host can
rebuild it from the visible extracts, so hubs that share a PostgreSQL store agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hub.contracts.model import Contract
from hub.contracts.validation import quote_ident
from hub.ingest.units import UNIT_COLUMN, exclusive
from hub.storage.objects import parquet_parts, parquet_schema
from hub.storage.sandbox import DuckLimits, sandboxed_duckdb

__all__ = [
    "PERSON_COLUMN",
    "LinkIndex",
    "LinkReport",
    "LinkSource",
    "identifier_columns",
    "linkable_datasets",
]

#: The person's id column of the per-dataset maps (with ``__unit``).
PERSON_COLUMN = "__person"
_VERSION = "1"
_DB = "links.duckdb"
#: DuckDB's memory for resolution (it spills to <folder>/tmp beyond; measured peak of a
#: rebuild at 10M rows: 1.7 GiB of RSS, bench/RESULTS.md "linkage").
_MEMORY_LIMIT = "2GB"
#: Person maps of older states are removed once this old.
_STALE_SECONDS = 3600


def identifier_columns(contract: Contract) -> tuple[tuple[str, str], ...]:
    """(field, identifier kind) of the fields that identify a person: the privacy unit
    first, then the link fields, in contract order."""
    return tuple((f.name, str(f.identifier_kind)) for f in contract.identity)


def linkable_datasets(contracts: Sequence[Contract]) -> frozenset[str]:
    """The datasets (newest ``contracts``) whose units can join other units: those with
    several identifier fields, or an identifier kind that another dataset has too (a dataset
    keyed by one document number alone has nothing to link: one token is one unit already)."""
    kinds = {c.dataset: {kind for _, kind in identifier_columns(c)} for c in contracts}
    return frozenset(c.dataset for c in contracts if len(c.identity) > 1
                     or any(kinds[c.dataset] & k for d, k in kinds.items() if d != c.dataset))


@dataclass(frozen=True, slots=True)
class LinkSource:
    """One visible extract: its dataset, its canonical copy, its identifier columns."""

    dataset: str
    extract_id: str
    path: Path
    identifiers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class LinkReport:
    """What resolution found (for administrators; never served to members)."""

    anchors: int
    identifiers: int
    persons: int
    merged_persons: int
    largest: int
    over_cap: int
    max_tokens: int
    oversized: list[dict[str, object]] = field(default_factory=list)


def _node_sql(expr: str) -> str:
    """A node id: 63 bits of MD5 of its text (a collision merges two persons, never splits
    one: it can only over-protect; at 10^8 nodes its chance is below 10^-3)."""
    return f"CAST(md5_number_lower({expr}) >> 1 AS BIGINT)"


def _anchor_text(dataset: str) -> str:
    return f"'u:{dataset}:' || CAST({UNIT_COLUMN} AS VARCHAR)"


class LinkIndex:
    """Component labels of every anchor and identifier, and the per-dataset person maps."""

    def __init__(self, folder: Path, *, max_tokens: int = 50,
                 stop_list: frozenset[str] = frozenset(),
                 limits: DuckLimits | None = None) -> None:
        self._folder = folder
        self._limits = limits or DuckLimits(2, _MEMORY_LIMIT, folder / "tmp")
        self._max_tokens = max_tokens
        self._stop = stop_list
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, Path | None]] = {}

    # -- public -----------------------------------------------------------------------------
    def persons(self, sources: Sequence[LinkSource], dataset: str) -> Path | None:
        """The (``__unit``, ``__person``) map of ``dataset`` for this state of the visible
        extracts, resolving first if needed; None when no unit of it shares a person."""
        return self.resolve(sources).get(dataset)

    def resolve(self, sources: Sequence[LinkSource]) -> dict[str, Path | None]:
        """Bring the index to ``sources`` (all visible extracts of every dataset) and return
        each dataset's person map (module docstring)."""
        digest = self._digest(sources)
        cached = self._known.get(digest)
        if cached is not None and all(p is None or p.exists() for p in cached.values()):
            return cached
        with self._locked(sources) as con:
            maps = self._maps(con, sources, digest)
        self._known = {digest: maps}
        return maps

    def report(self, sources: Sequence[LinkSource], limit: int = 20) -> LinkReport:
        """Sizes of the persons at this state, and the largest ones with the identifiers
        most of their units share (the tokens governance may stop-list; never raw
        identifiers: the hub has no network key)."""
        with self._locked(sources) as con:
            self._bring_to(con, sources)  # the maps of a state may outlive its tables
            con.execute(
                "CREATE OR REPLACE TEMP TABLE sizes AS SELECT comp, "
                "count(*) FILTER (WHERE NOT token) AS a, count(*) FILTER (WHERE token) AS t "
                "FROM nodes GROUP BY comp")
            (anchors, tokens, persons, merged, largest, over) = con.execute(
                "SELECT coalesce(sum(a), 0), coalesce(sum(t), 0), count(*) FILTER (WHERE a > 0), "
                "count(*) FILTER (WHERE a > 1), coalesce(max(t), 0), "
                "count(*) FILTER (WHERE t > ?) FROM sizes", [self._max_tokens]).fetchone() or (
                0, 0, 0, 0, 0, 0)
            big = con.execute(
                "SELECT comp, t, a FROM sizes WHERE t > ? ORDER BY t DESC, comp LIMIT ?",
                [self._max_tokens, limit]).fetchall()
            shared = self._shared_tokens(con, sources, [c for c, _, _ in big])
        return LinkReport(
            anchors=int(anchors), identifiers=int(tokens), persons=int(persons),
            merged_persons=int(merged), largest=int(largest), over_cap=int(over),
            max_tokens=self._max_tokens,
            oversized=[{"person": f"p{int(comp) & (2**64 - 1):016x}", "identifiers": int(t),
                        "units": int(a), "shared": shared.get(int(comp), [])}
                       for comp, t, a in big])

    def _shared_tokens(self, con: duckdb.DuckDBPyConnection, sources: Sequence[LinkSource],
                       comps: list[int], top: int = 3) -> dict[int, list[dict[str, object]]]:
        """Per component: its ``top`` identifiers by the number of units that carry them."""
        if not comps:
            return {}
        selects, params = [], []
        for s in sources:
            names = set(parquet_schema(s.path).names)
            for column, kind in s.identifiers:
                if column in names:
                    col = quote_ident(column)
                    node = _node_sql(f"'{kind}:' || {col}")
                    selects.append(
                        f"SELECT '{kind}' AS kind, {col} AS tok, {node} AS node, "
                        f"'{s.dataset}:' || CAST({UNIT_COLUMN} AS VARCHAR) AS unit "
                        f"FROM (SELECT DISTINCT {UNIT_COLUMN}, {col} FROM read_parquet(?) "
                        f"WHERE {col} IS NOT NULL)")
                    params.append([str(p) for p in parquet_parts(s.path)])
        rows = con.execute(
            "SELECT comp, kind, tok, units FROM (SELECT n.comp, x.kind, x.tok, "
            "count(DISTINCT x.unit) AS units, row_number() OVER (PARTITION BY n.comp "
            "ORDER BY count(DISTINCT x.unit) DESC, x.tok) AS rn "
            f"FROM ({' UNION ALL '.join(selects)}) x JOIN nodes n ON n.node = x.node "
            "WHERE list_contains(?, n.comp) GROUP BY n.comp, x.kind, x.tok) "
            "WHERE rn <= ? ORDER BY comp, units DESC, tok", [*params, comps, top]).fetchall()
        out: dict[int, list[dict[str, object]]] = {}
        for comp, kind, tok, units in rows:
            out.setdefault(int(comp), []).append({"kind": kind, "token": tok, "units": int(units)})
        return out

    # -- internals --------------------------------------------------------------------------
    def _digest(self, sources: Sequence[LinkSource]) -> str:
        h = hashlib.sha256(f"v{_VERSION}|{self._config()}".encode())
        for s in sorted(sources, key=lambda s: s.extract_id):
            h.update(f"\n{s.dataset}|{s.extract_id}|{s.identifiers}".encode())
        return h.hexdigest()[:24]

    def _config(self) -> str:
        return hashlib.sha256("\n".join(sorted(self._stop)).encode()).hexdigest()[:16]

    @contextmanager
    def _locked(self, sources: Sequence[LinkSource]) -> Iterator[duckdb.DuckDBPyConnection]:
        """The index's database, locked across processes, in a DuckDB sandbox that reads the
        sources' extracts and writes this folder only."""
        with (exclusive(self._folder / "links.lock", self._lock),
              sandboxed_duckdb(self._limits, database=self._folder / _DB,
                               read=[p for s in sources for p in parquet_parts(s.path)],
                               folders=[self._folder]) as con):
            yield con

    def _maps(self, con: duckdb.DuckDBPyConnection, sources: Sequence[LinkSource],
              digest: str) -> dict[str, Path | None]:
        datasets = sorted({s.dataset for s in sources})
        paths = {d: self._folder / f"persons-{d}-{digest}" for d in datasets}
        done = {d: p.with_suffix(".parquet") for d, p in paths.items()}
        if all(p.exists() or p.with_suffix(".none").exists() for p in done.values()):
            return {d: (p if p.exists() else None) for d, p in done.items()}
        self._bring_to(con, sources)
        out: dict[str, Path | None] = {}
        for d in datasets:
            target = done[d]
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            con.execute(
                f"COPY (SELECT unit AS {UNIT_COLUMN}, {PERSON_COLUMN} FROM ("
                f"SELECT a.unit, min(a.unit) OVER (PARTITION BY n.comp) AS {PERSON_COLUMN} "
                "FROM anchors a JOIN nodes n ON n.node = a.node WHERE a.dataset = ?) "
                f"WHERE unit <> {PERSON_COLUMN} ORDER BY unit) TO '{tmp}' (FORMAT parquet)",
                [d])
            if pq.read_metadata(tmp).num_rows == 0:
                tmp.unlink()
                target.with_suffix(".none").touch()
                out[d] = None
            else:
                os.replace(tmp, target)
                out[d] = target
        self._expire(keep=digest)
        return out

    def _bring_to(self, con: duckdb.DuckDBPyConnection,
                  sources: Sequence[LinkSource]) -> None:
        """Update the stored components to exactly ``sources`` (incremental when it only
        adds extracts to those held, else rebuilt)."""
        con.execute("CREATE TABLE IF NOT EXISTS meta (config VARCHAR NOT NULL)")
        con.execute("CREATE TABLE IF NOT EXISTS held (id VARCHAR NOT NULL)")
        con.execute("CREATE TABLE IF NOT EXISTS nodes "
                    "(node BIGINT NOT NULL, comp BIGINT NOT NULL, token BOOLEAN NOT NULL)")
        con.execute("CREATE TABLE IF NOT EXISTS anchors "
                    "(dataset VARCHAR NOT NULL, unit BIGINT NOT NULL, node BIGINT NOT NULL)")
        config = json.dumps([_VERSION, self._config()])
        stored = con.execute("SELECT config FROM meta").fetchall()
        held = {r[0] for r in con.execute("SELECT id FROM held").fetchall()}
        want = {s.extract_id for s in sources}
        if stored != [(config,)] or not held <= want:
            con.execute("BEGIN TRANSACTION")
            for table in ("meta", "held", "nodes", "anchors"):
                con.execute(f"DELETE FROM {table}")
            con.execute("INSERT INTO meta VALUES (?)", [config])
            con.execute("COMMIT")
            held = set()
        added = [s for s in sources if s.extract_id not in held]
        if added:
            self._union(con, added)

    def _union(self, con: duckdb.DuckDBPyConnection, added: Sequence[LinkSource]) -> None:
        """Union the edges of ``added`` into the stored components, in one transaction."""
        selects, params = [], []
        for s in added:
            names = set(parquet_schema(s.path).names)
            for column, kind in s.identifiers:
                if column not in names:  # an extract of an older contract version
                    continue
                col = quote_ident(column)
                token = _node_sql(f"'{kind}:' || {col}")
                # distinct (unit, token) pairs first: MD5 is the costly part (measured: two
                # thirds of a rebuild when hashed per row), once per pair instead
                selects.append(
                    f"SELECT {_node_sql(_anchor_text(s.dataset))} AS a, {token} AS b, "
                    f"'{s.dataset}' AS dataset, {UNIT_COLUMN} AS unit "
                    f"FROM (SELECT DISTINCT {UNIT_COLUMN}, {col} FROM read_parquet(?) "
                    f"WHERE {col} IS NOT NULL AND {UNIT_COLUMN} IS NOT NULL "
                    f"AND NOT list_contains(?, {col}))")
                params += [[str(p) for p in parquet_parts(s.path)], sorted(self._stop)]
        con.execute("BEGIN TRANSACTION")
        try:
            if selects:
                con.execute("CREATE OR REPLACE TEMP TABLE new_edges AS SELECT DISTINCT * FROM ("
                            + " UNION ALL ".join(selects) + ")", params)
                self._merge(con)
                con.execute("INSERT INTO anchors SELECT DISTINCT e.dataset, e.unit, e.a "
                            "FROM new_edges e ANTI JOIN anchors x "
                            "ON x.dataset = e.dataset AND x.unit = e.unit")
            con.executemany("INSERT INTO held VALUES (?)", [[s.extract_id] for s in added])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @staticmethod
    def _merge(con: duckdb.DuckDBPyConnection) -> None:
        """Connected components of (stored labels + new edges); relabel what merged."""
        pairs = con.sql(
            "SELECT DISTINCT coalesce(na.comp, e.a) AS la, coalesce(nb.comp, e.b) AS lb "
            "FROM new_edges e LEFT JOIN nodes na ON na.node = e.a "
            "LEFT JOIN nodes nb ON nb.node = e.b").to_arrow_table()
        la = pairs.column("la").to_numpy()
        lb = pairs.column("lb").to_numpy()
        labels, inverse = np.unique(np.concatenate([la, lb]), return_inverse=True)
        n, k = len(labels), len(la)
        graph = coo_matrix((np.ones(k, dtype=np.int8), (inverse[:k], inverse[k:])),
                           shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        # the new label of each component: its smallest old label (labels are sorted, so a
        # component's first occurrence in label order is its minimum)
        _, first = np.unique(comp, return_index=True)
        relabel = pa.table({"old": labels, "new": labels[first][comp]})
        con.register("relabel_in", relabel)
        try:
            con.execute("UPDATE nodes SET comp = r.new FROM relabel_in r "
                        "WHERE nodes.comp = r.old AND r.old <> r.new")
            con.execute(
                "INSERT INTO nodes SELECT x.node, r.new, x.token FROM ("
                "SELECT DISTINCT a AS node, false AS token FROM new_edges UNION "
                "SELECT DISTINCT b, true FROM new_edges) x "
                "JOIN relabel_in r ON r.old = x.node ANTI JOIN nodes y ON y.node = x.node")
        finally:
            con.unregister("relabel_in")

    def _expire(self, keep: str) -> None:
        """Remove the maps of older states once stale (a query may still read one)."""
        now = time.time()
        for old in self._folder.glob("persons-*"):
            try:
                if keep not in old.name and now - old.stat().st_mtime > _STALE_SECONDS:
                    old.unlink()
            except OSError:
                continue
