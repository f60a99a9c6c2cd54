"""Commits on the cluster (``TAHUB_ENGINE=spark``): an extract's checks, its unit numbers, its
fixed-point columns and its canonical copy as jobs of the engine's runner, so that a dataset
larger than one node can be committed; the hub keeps only metadata.

The hub still reads the extract's footer (its metadata, columns and limits:
:func:`hub.ingest.extracts.check_extract`), then hands the rows to
:meth:`ClusterCommit.check`, which runs five statements, each written once in DuckDB's dialect
and run by :class:`~hub.engines.runner.Runner` (transpiled for Spark by
:mod:`hub.engines.dialect`), each writing its result as Parquet in the commit's work folder
under ``TAHUB_SPARK_SHARED_DIR``:

1. ``checked``: the contract's validating query (:func:`hub.contracts.validation.validation_sql`)
   over the uploaded file, each row with its place in the file (``file_row_number``, Spark's
   ``_metadata.row_index``); pages with CRC checksums are verified as they are read. Its
   counts and first errors come back to the hub, which refuses the extract as it would on
   DuckDB.
2. ``counted``: each anchor token of the valid rows with its rows and first row, joined with
   the dataset's unit index (below).
3. ``tokens``: known tokens with their id and rows seen; new ones numbered after the
   dataset's last id in the order of their first row.
4. the canonical copy: the valid rows with ``__unit``, ``__seq`` (rows seen + the row's rank
   among this extract's rows of its unit, in file order), ``__partner``, ``__prio`` and the
   :class:`~hub.ingest.units.FixedColumn` s; the very definitions of :mod:`hub.ingest.units`
   (:func:`~hub.ingest.units.prio_sql` hashes text both engines write alike), so that an
   extract committed here has the numbers, priorities and fixed-point integers that the
   embedded commit gives it (tests/hub/test_spark_commit.py). Its schema and ``tahub.*``
   metadata, which Spark's writer cannot record, go to the folder's ``_common_metadata``
   (:data:`~hub.storage.objects.COMMON_METADATA`), written by the hub.
5. the index's next version: the previous one with this extract's tokens counted.

**The unit index** of a dataset is a folder of versions under
``<TAHUB_SPARK_SHARED_DIR>/index/cluster-units/<dataset>/``: ``v<n>`` (Parquet: token, unit,
rows_seen) and ``CURRENT`` (JSON: the version, the last unit id, the dataset's secret salt),
replaced atomically (``os.replace``) after the new version is written and before the extract
becomes visible, so that, as in the embedded index, a crash or a refused commit afterwards
leaves only gaps in a unit's numbers, never a repeated one. Each commit rewrites the index
(a join of the index with the extract's tokens, on the cluster). Commits of one dataset are
serialised by an ``fcntl`` lock in that folder (hub processes share it).

New ids are ranked by one window over the new tokens' first rows (a sort of one BIGINT per
new token, on one executor, which spills to its disk); every other step is partitioned.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hub.contracts.model import Contract
from hub.contracts.rowcheck import CheckResult, listed_sql, result_of, summary_sql
from hub.contracts.validation import ERRORS_COLUMN, ROW_COLUMN, Side, quote_ident, validation_sql
from hub.engines.runner import Runner
from hub.errors import MAX_LISTED_ERRORS, Unavailable
from hub.ingest.units import (
    PARTNER_COLUMN,
    PRIO_COLUMN,
    SEQ_COLUMN,
    UNIT_COLUMN,
    FixedColumn,
    UnitNumbering,
    anchor_sql,
    dataset_name,
    exclusive,
    prio_sql,
)
from hub.storage.objects import COMMON_METADATA, parquet_parts

__all__ = ["ClusterCommit", "IndexState"]

_MAX_SEQ = 2**31 - 1
_INDEX = pa.schema([("token", pa.string()), ("unit", pa.int64()), ("rows_seen", pa.int64())])
_CURRENT = "CURRENT"
_ROW = quote_ident(ROW_COLUMN)


def _valid(alias: str = "") -> str:
    """SQL: the row (of ``alias``) passed every check."""
    return f"array_length({alias + '.' if alias else ''}{ERRORS_COLUMN}) = 0"


@dataclass(frozen=True)
class IndexState:
    """A dataset's unit index as ``CURRENT`` records it."""

    version: int
    last_unit: int
    salt: str


class ClusterCommit:
    """Checks and numbers extracts with ``runner`` in folders under ``root`` (the folder
    every cluster node shares): see the module docstring."""

    def __init__(self, runner: Runner, root: Path, embedded: UnitNumbering | None = None
                 ) -> None:
        self.runner = runner
        self._index = root / "index" / "cluster-units"
        self._embedded = embedded
        self._lock = threading.Lock()

    def check(self, raw: Path, contract: Contract, canonical: Path, partner: str,
              schema: pa.Schema, max_errors: int = MAX_LISTED_ERRORS) -> CheckResult:
        """Check the rows of ``raw`` (in ``canonical``'s folder, which the cluster reads);
        when all pass, number them, write the canonical copy as a folder at ``canonical``
        with ``schema`` as its ``_common_metadata``, and update the index."""
        work = canonical.parent
        checked = work / "checked"
        source = (f"(SELECT *, file_row_number + 1 AS {_ROW} "
                  "FROM read_parquet($raw, file_row_number = true))")
        self._write(validation_sql(contract, source, Side.HUB), checked, raw=raw)
        (summary,) = self._fetch(summary_sql("read_parquet($checked)"), checked=checked)
        listed = self._fetch(listed_sql("read_parquet($checked)", max_errors), checked=checked)
        result = result_of(str(checked), summary, listed)
        if result.rows == 0 or result.total_errors:
            return result
        with self._locked(contract.dataset) as folder:
            state = self._moved(contract.dataset, folder)
            index = folder / f"v{state.version:08d}" if state.version else None
            tokens = self._tokens(contract, checked, index, state.last_unit, work)
            out = self._write(_numbered(contract, state.salt), canonical, partner=partner,
                              checked=checked, tokens=tokens)
            if out != result.rows:  # every valid row has an anchor: never seen
                raise Unavailable(f"{out} of {result.rows} rows were numbered; retry later")
            ((last,),) = self._fetch("SELECT coalesce(max(unit), 0) FROM read_parquet($tokens)",
                                     tokens=tokens)
            nxt = folder / f"v{state.version + 1:08d}"
            _remove(nxt)  # what a commit that failed before its CURRENT left
            self._next_index(index, tokens, nxt)
            _commit_state(folder, IndexState(state.version + 1, max(int(last), state.last_unit),
                                             state.salt))
            if index is not None:
                _remove(index)
        _as_folder(canonical)
        pq.write_metadata(schema, canonical / COMMON_METADATA)
        return result

    def _moved(self, dataset: str, folder: Path) -> IndexState:
        """The index's state; on a dataset's first commit here, the units the embedded index
        numbered (a hub that ran on DuckDB before), moved as they are: a person keeps their
        unit id and rows seen (else their rows before and after the switch would be two
        units, each with its own bound) and the dataset its salt."""
        state = _state(folder)
        if (folder / _CURRENT).exists() or self._embedded is None:
            return state
        salt = self._embedded.salt(dataset)
        if salt is None:
            return state
        seen = self._embedded.rows_seen(dataset)
        first = IndexState(1, max((u for u, _ in seen.values()), default=0), salt)
        pq.write_table(pa.table({"token": list(seen),
                                 "unit": [u for u, _ in seen.values()],
                                 "rows_seen": [n for _, n in seen.values()]},
                                schema=_INDEX), folder / f"v{first.version:08d}")
        _commit_state(folder, first)
        return first

    def begin(self, dataset: str, salt: str) -> None:
        """Begin ``dataset``'s index with ``salt`` (a dataset moved from the embedded index
        keeps its salt, so that its rows keep their priorities); refused once it has units."""
        with self._locked(dataset) as folder:
            if _state(folder).version:
                raise ValueError(f"the index of {dataset} has units already")
            _commit_state(folder, IndexState(0, 0, salt))

    def state(self, dataset: str) -> IndexState:
        """The dataset's index state (tests and audits)."""
        with self._locked(dataset) as folder:
            return _state(folder)

    def rows_seen(self, dataset: str) -> dict[str, tuple[int, int]]:
        """Token -> (unit id, rows seen) of ``dataset`` (tests and audits; never served)."""
        with self._locked(dataset) as folder:
            state = _state(folder)
            if not state.version:
                return {}
            path = folder / f"v{state.version:08d}"
            table = pq.ParquetDataset(parquet_parts(path)).read()
        return {str(t): (int(u), int(n)) for t, u, n in zip(
            *(table[c].to_pylist() for c in ("token", "unit", "rows_seen")), strict=True)}

    # -- the statements --------------------------------------------------------------------
    def _tokens(self, contract: Contract, checked: Path, index: Path | None, last_unit: int,
                work: Path) -> Path:
        """``tokens`` (tok, n, new, unit, seen): statement 2 then 3."""
        counts = (f"SELECT tok, count(*) AS n, min({_ROW}) AS first FROM "
                  f"(SELECT {_ROW}, {anchor_sql(contract)} AS tok FROM read_parquet($checked) "
                  f"WHERE {_valid()}) WHERE tok IS NOT NULL GROUP BY tok")
        counted = work / "counted"
        if index is None:
            self._write(f"SELECT tok, n, first, CAST(NULL AS BIGINT) AS unit, "
                        f"CAST(NULL AS BIGINT) AS rows_seen FROM ({counts})", counted,
                        checked=checked)
        else:
            self._write(f"SELECT t.tok, t.n, t.first, u.unit, u.rows_seen FROM ({counts}) t "
                        "LEFT JOIN read_parquet($index) u ON u.token = t.tok", counted,
                        checked=checked, index=index)
        tokens = work / "tokens"
        self._write(
            "SELECT tok, n, false AS new, unit, rows_seen AS seen FROM read_parquet($counted) "
            "WHERE unit IS NOT NULL UNION ALL SELECT tok, n, true AS new, "
            "CAST($last + row_number() OVER (ORDER BY first) AS BIGINT) AS unit, "
            "CAST(0 AS BIGINT) AS seen FROM read_parquet($counted) WHERE unit IS NULL",
            tokens, counted=counted, last=last_unit)
        return tokens

    def _next_index(self, index: Path | None, tokens: Path, out: Path) -> None:
        """Statement 5: the index with this extract's tokens counted, written at ``out``."""
        counted = "SELECT tok AS token, unit, seen + n AS rows_seen FROM read_parquet($tokens)"
        if index is None:
            self._write(counted, out, tokens=tokens)
        else:
            self._write("SELECT u.token, u.unit, u.rows_seen FROM read_parquet($index) u "
                        f"ANTI JOIN read_parquet($tokens) k ON u.token = k.tok UNION ALL "
                        f"{counted}", out, index=index, tokens=tokens)

    def _write(self, sql: str, out: Path, **values: object) -> int:
        params, read = _bound(values)
        return self.runner.write(sql, params, out, read)

    def _fetch(self, sql: str, **values: object) -> list[tuple[Any, ...]]:
        params, read = _bound(values)
        return self.runner.fetch(sql, params, read)

    @contextmanager
    def _locked(self, dataset: str) -> Iterator[Path]:
        folder = self._index / dataset_name(dataset)
        with exclusive(folder / "lock", self._lock):
            yield folder


def _bound(values: dict[str, object]) -> tuple[dict[str, object], list[Path]]:
    """``$name`` parameters of a statement, and the files it reads: a Path value stands for
    its Parquet parts (a file, or a folder Spark wrote)."""
    params: dict[str, object] = {}
    read: list[Path] = []
    for name, value in values.items():
        if isinstance(value, Path):
            parts = parquet_parts(value)
            read += parts
            value = [str(p) for p in parts]
        params[name] = value
    return params, read


def _numbered(contract: Contract, salt: str) -> str:
    """Statement 4: the canonical copy's rows (module docstring), from ``$checked``,
    ``$tokens`` and ``$partner``."""
    cols = ", ".join(f"c.{quote_ident(f.name)}" for f in contract.extract_fields)
    fixed = "".join(f", {c.select('c.' + quote_ident(c.field))}"
                    for c in FixedColumn.of(contract))
    return (
        f"SELECT {cols}, c.unit AS {UNIT_COLUMN}, c.seq AS {SEQ_COLUMN}, "
        f"CAST($partner AS VARCHAR) AS {PARTNER_COLUMN}, "
        f"{prio_sql(contract, 'c', salt)} * {2**31} + c.seq AS {PRIO_COLUMN}{fixed} "
        f"FROM (SELECT r.*, k.unit, CAST(least(k.seen + row_number() OVER "
        f"(PARTITION BY k.unit ORDER BY r.{_ROW}), {_MAX_SEQ}) AS INTEGER) AS seq "
        f"FROM read_parquet($checked) r JOIN read_parquet($tokens) k "
        f"ON {anchor_sql(contract, 'r')} = k.tok WHERE {_valid('r')}) c"
    )


def _state(folder: Path) -> IndexState:
    path = folder / _CURRENT
    if not path.exists():  # a dataset's first commit: its salt is made now
        return IndexState(0, 0, secrets.token_hex(16))
    raw = json.loads(path.read_text(encoding="utf-8"))
    return IndexState(int(raw["version"]), int(raw["last_unit"]), str(raw["salt"]))


def _commit_state(folder: Path, state: IndexState) -> None:
    """Make ``state`` the index's current one in one rename (durable before it returns)."""
    tmp = folder / f".{_CURRENT}.{secrets.token_hex(4)}"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump({"version": state.version, "last_unit": state.last_unit,
                   "salt": state.salt}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, folder / _CURRENT)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _as_folder(path: Path) -> None:
    """A single file written by DuckDB as a folder holding it (Spark writes folders)."""
    if path.is_file():
        tmp = path.with_name(path.name + ".part")
        os.replace(path, tmp)
        path.mkdir()
        os.replace(tmp, path / "part-0.parquet")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
