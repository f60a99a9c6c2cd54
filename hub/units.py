"""The unit index: contribution bounding paid once, when an extract is committed.

Each unit keeps at most ``max_rows`` rows **in total** across all partners (see
``docs/privacy.md``). Rather than numbering every unit's rows with a window function in every
query (3.7-18 s on 10M rows), the hub numbers them once, at commit, in arrival order, and a
query keeps ``__seq <= max_rows`` with a plain filter.

Per dataset, the index maps each privacy-unit token to a compact unit id (BIGINT) and the
number of rows seen so far (``rows_seen``). It lives in one DuckDB file per dataset,
``<data_dir>/index/units/<dataset>.duckdb``. At commit, after the extract passed every check
and before it becomes visible, :meth:`UnitIndex.number` gives each checked row

* ``__unit``    the unit's id (a new id for a token never seen before);
* ``__seq``     ``rows_seen`` + the row's 1-based rank among this extract's rows of the unit
                (in file order), capped at 2^31 - 1;
* ``__partner`` the uploading organisation's id (constant per extract),

and adds the extract's rows to ``rows_seen``. The window function runs once, over this
extract only. The canonical copy (``hub.extracts``) stores the three columns.

Fixed-point measure columns are paid for at commit too: for every numeric measure field of
the contract, ``__fx_<field>`` holds the value clamped to the contract's clamp range and
rounded to the fixed-point integer a sum adds (:func:`hub.privacy.sum_decimals` decimals,
:func:`hub.privacy.to_fixed` rounding; the very SQL expression the engine would otherwise
evaluate per row in every query). The file's ``tahub.fixed`` metadata records each column's
clamp and decimals, and the engine reads a column only for a sum with exactly that clamp and
those decimals (a policy that narrows the clamp gets the per-query expression). The
precomputed integers are a deterministic function of each row alone, so the privacy argument
of the sum (docs/privacy.md) is unchanged.

Why the privacy argument holds: a unit's numbers depend only on that unit's own rows and the
order in which they arrived, never on another unit's rows; so adding or removing one unit
changes at most that unit's ``max_rows`` kept rows. ``rows_seen`` never goes down: the index
is committed *before* the extract becomes visible, so a crash in between, a rejected
duplicate commit or a later withdrawal only leaves gaps in a unit's numbers, and gaps can
only make a unit keep *fewer* rows than ``max_rows``, never more.

Commits of one dataset are serialised by a process lock and an ``fcntl`` lock on
``<dataset>.lock`` (several hub processes may share a data folder); the DuckDB file is open
only while the lock is held.
"""

from __future__ import annotations

import fcntl
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from hub.contracts import Contract, FieldType, Role
from hub.privacy import sum_decimals, to_fixed
from hub.validation import ERRORS_COLUMN, ROW_COLUMN, quote_ident

__all__ = [
    "BOUND_FIELDS",
    "FIXED_META",
    "PARTNER_COLUMN",
    "SEQ_COLUMN",
    "UNIT_COLUMN",
    "FixedColumn",
    "UnitIndex",
]

UNIT_COLUMN = "__unit"
SEQ_COLUMN = "__seq"
PARTNER_COLUMN = "__partner"
#: The columns the canonical copy of an extract carries after the contract's fields.
BOUND_FIELDS: tuple[pa.Field, ...] = (
    pa.field(UNIT_COLUMN, pa.int64()),
    pa.field(SEQ_COLUMN, pa.int32()),
    pa.field(PARTNER_COLUMN, pa.string()),
)
#: Parquet metadata key of the fixed-point columns: {field: {column, clamp, decimals}} JSON.
FIXED_META = "tahub.fixed"
_MAX_SEQ = 2**31 - 1
_DATASET_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_BOUNDS_TABLE = "__bounds"
_TOKENS_TABLE = "__unit_tokens"
_ALIAS = "__unit_index"


@dataclass(frozen=True)
class FixedColumn:
    """A measure field's clamped fixed-point integers, stored at commit (module docstring)."""

    field: str
    clamp: tuple[float, float]
    decimals: int

    @property
    def column(self) -> str:
        return f"__fx_{self.field}"

    @property
    def arrow_type(self) -> pa.DataType:
        steps = max(abs(to_fixed(x, self.decimals)) for x in self.clamp)
        return pa.int32() if steps < 2**31 else pa.int64()

    @staticmethod
    def sql(value: str, lo: str, hi: str, scale: str) -> str:
        """The per-row expression (``lo``/``hi``/``scale`` as SQL: literals or ``?``)."""
        return f"CAST(round(least(greatest(CAST({value} AS DOUBLE), {lo}), {hi}) * {scale}) " \
            "AS BIGINT)"

    def select(self, value: str) -> str:
        lo, hi = (f"CAST({float(x)!r} AS DOUBLE)" for x in self.clamp)
        expr = self.sql(value, lo, hi, f"CAST({float(10**self.decimals)!r} AS DOUBLE)")
        kind = "INTEGER" if self.arrow_type == pa.int32() else "BIGINT"
        return f"CAST({expr} AS {kind}) AS {quote_ident(self.column)}"

    @classmethod
    def of(cls, contract: Contract) -> list[FixedColumn]:
        """One per numeric measure field of ``contract`` (each has a clamp range)."""
        return [
            cls(f.name, f.domain.clamp, sum_decimals(f.domain.clamp, f.type is FieldType.INTEGER))
            for f in contract.extract_fields
            if f.role is Role.MEASURE and f.type in (FieldType.INTEGER, FieldType.NUMBER)
            and f.domain is not None and f.domain.clamp is not None
        ]

    @staticmethod
    def metadata(columns: list[FixedColumn]) -> str:
        return json.dumps({c.field: {"column": c.column, "clamp": list(c.clamp),
                                     "decimals": c.decimals} for c in columns}, sort_keys=True)

    @classmethod
    def parse(cls, meta: Mapping[bytes, bytes] | None) -> dict[str, FixedColumn]:
        """The fixed-point columns a file's metadata declares (none if absent or malformed)."""
        raw = (meta or {}).get(FIXED_META.encode())
        try:
            spec = json.loads(raw) if raw else {}
            out = {name: cls(name, (float(v["clamp"][0]), float(v["clamp"][1])),
                             int(v["decimals"])) for name, v in spec.items()}
        except (ValueError, TypeError, KeyError, IndexError):
            return {}
        return {n: c for n, c in out.items() if spec[n].get("column") == c.column}


class UnitIndex:
    """Token -> (unit id, rows seen) per dataset, under ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()

    def path(self, dataset: str) -> Path:
        if not _DATASET_RE.match(dataset):
            raise ValueError(f"not a dataset name: {dataset!r}")
        return self._folder / f"{dataset}.duckdb"

    @contextmanager
    def _locked(self, dataset: str) -> Iterator[Path]:
        path = self.path(dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(path.with_suffix(".lock"), "a+b") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    def number(
        self,
        con: duckdb.DuckDBPyConnection,
        contract: Contract,
        partner: str,
        table: str = "__checked",
    ) -> str:
        """Number the valid rows of the checked ``table`` on ``con``; update the index.

        Returns the SQL of the valid rows in file order: the contract's extract fields, then
        ``__unit``, ``__seq``, ``__partner`` (:data:`BOUND_FIELDS`), then the
        :class:`FixedColumn` s of the contract. The index is committed before this returns,
        i.e. before the extract can become visible.
        """
        unit = quote_ident(contract.privacy_unit.name)
        src, row = quote_ident(table), quote_ident(ROW_COLUMN)
        valid = f"SELECT {row}, {unit} AS tok FROM {src} WHERE len({ERRORS_COLUMN}) = 0"
        with self._locked(contract.dataset) as path:
            con.execute(f"ATTACH {_lit(str(path))} AS {_ALIAS}")
            try:
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {_ALIAS}.units "
                    "(token VARCHAR NOT NULL, unit BIGINT NOT NULL, rows_seen BIGINT NOT NULL)"
                )
                ((base,),) = con.execute(
                    f"SELECT coalesce(max(unit), 0) FROM {_ALIAS}.units"
                ).fetchall()
                # This extract's tokens: known ones keep their id, new ones get the next ids.
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {_TOKENS_TABLE} AS "
                    "SELECT t.tok, t.n, u.unit IS NULL AS new, "
                    "coalesce(u.unit, ? + row_number() OVER "
                    "(PARTITION BY u.unit IS NULL)) AS unit, "
                    "coalesce(u.rows_seen, 0) AS seen "
                    f"FROM (SELECT tok, count(*) AS n FROM ({valid}) GROUP BY tok) t "
                    f"LEFT JOIN {_ALIAS}.units u ON u.token = t.tok",
                    [int(base)],
                )
                # The one window function, over this extract's rows only.
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {_BOUNDS_TABLE} AS "
                    f"SELECT v.{row}, k.unit AS {UNIT_COLUMN}, "
                    f"CAST(least(k.seen + row_number() OVER (PARTITION BY k.unit "
                    f"ORDER BY v.{row}), {_MAX_SEQ}) AS INTEGER) AS {SEQ_COLUMN} "
                    f"FROM ({valid}) v JOIN {_TOKENS_TABLE} k ON v.tok = k.tok"
                )
                con.execute("BEGIN TRANSACTION")
                try:
                    con.execute(
                        f"INSERT INTO {_ALIAS}.units "
                        f"SELECT tok, unit, n FROM {_TOKENS_TABLE} WHERE new"
                    )
                    con.execute(
                        f"UPDATE {_ALIAS}.units AS u SET rows_seen = u.rows_seen + k.n "
                        f"FROM {_TOKENS_TABLE} AS k WHERE NOT k.new AND u.token = k.tok"
                    )
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            finally:
                con.execute(f"DETACH {_ALIAS}")
        cols = ", ".join(f"c.{quote_ident(f.name)}" for f in contract.extract_fields)
        fixed = "".join(f", {c.select('c.' + quote_ident(c.field))}"
                        for c in FixedColumn.of(contract))
        return (
            f"SELECT {cols}, b.{UNIT_COLUMN}, b.{SEQ_COLUMN}, "
            f"CAST({_lit(partner)} AS VARCHAR) AS {PARTNER_COLUMN}{fixed} "
            f"FROM {src} c JOIN {_BOUNDS_TABLE} b ON b.{row} = c.{row} "
            f"ORDER BY c.{row}"
        )

    def rows_seen(self, dataset: str) -> dict[str, tuple[int, int]]:
        """Token -> (unit id, rows seen): for tests and audits (never served by the API)."""
        with self._locked(dataset) as path:
            if not path.exists():
                return {}
            con = duckdb.connect(str(path), read_only=True)
            try:
                rows = con.execute("SELECT token, unit, rows_seen FROM units").fetchall()
            finally:
                con.close()
        return {str(t): (int(u), int(n)) for t, u, n in rows}


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
