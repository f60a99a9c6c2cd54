"""The unit index: what contribution bounding needs, paid once, when an extract is committed.

Each unit keeps at most ``max_rows`` rows **in total** across all partners (see
``docs/privacy.md``), or, for trends, at most ``max_rows_per_period`` in each period. *Which*
rows it keeps must not depend on the order in which extracts or rows arrived: extracts
arrive in time order, and keeping a unit's first rows would drop more of the late months
(measured: 43% of a planted monthly rise). So every row gets, at commit, a **keyed random
priority**, and a unit keeps its ``max_rows`` rows of smallest priority, whatever their
order (:mod:`hub.query.bounds` finds them, once per dataset state and bound).

Per dataset, the index maps each anchor token (a row's first non-empty identifier: the
privacy-unit field, then the contract's link fields; :func:`anchor_sql`) to a compact unit
id (BIGINT) and the number of rows seen so far (``rows_seen``), and holds the dataset's
secret ``salt``. It lives in one DuckDB file per dataset,
``<data_dir>/index/units/<dataset>.duckdb``. At commit, after the extract passed every check
and before it becomes visible, :meth:`UnitIndex.number` gives each checked row

* ``__unit``    the unit's id (a new id for a token never seen before);
* ``__seq``     ``rows_seen`` + the row's 1-based rank among this extract's rows of the unit
                (in file order), capped at 2^31 - 1: a unique ordinal per unit, which
                tells cheaply which units have more rows than a bound;
* ``__partner`` the uploading organisation's id (constant per extract);
* ``__prio``    ``h * 2^31 + __seq``, where ``h`` is 31 bits of MD5(salt, the row's values):
                a pseudo-random order that depends only on the row's content and the
                dataset's secret salt (so neither arrival order nor a partner's choice of
                rows decides which rows count), unique per unit (``__seq`` breaks ties);

and adds the extract's rows to ``rows_seen``. The window function runs once, over this
extract only. Units that share an identifier are joined into persons afterwards, across
partners and datasets (:mod:`hub.ingest.linkage`); queries bound and count persons. The
canonical copy (``hub.ingest.extracts``) stores the four columns.

Fixed-point measure columns are paid for at commit too: for every numeric measure field of
the contract, ``__fx_<field>`` holds the value clamped to the contract's clamp range and
rounded to the fixed-point integer a sum adds (:func:`hub.privacy.sum_decimals` decimals,
:func:`hub.privacy.to_fixed` rounding; the very SQL expression the engine would otherwise
evaluate per row in every query). The file's ``tahub.fixed`` metadata records each column's
clamp and decimals, and the engine reads a column only for a sum with exactly that clamp and
those decimals (a policy that narrows the clamp gets the per-query expression). The
precomputed integers are a deterministic function of each row alone, so the privacy argument
of the sum (docs/privacy.md) is unchanged.

Why the privacy argument holds: a unit's numbers and priorities depend only on that unit's
own rows (and the salt), never on another unit's rows; so the rows a unit keeps are a
function of its own rows, and adding or removing one unit changes at most that unit's
``max_rows`` kept rows. ``rows_seen`` never goes down: the index is committed *before* the
extract becomes visible, so a crash in between, a rejected duplicate commit or a later
withdrawal only leaves gaps in a unit's numbers, never a repeated one, so priorities stay
unique per unit.

Commits of one dataset are serialised by a process lock and an ``fcntl`` lock on
``<dataset>.lock`` (several hub processes may share a data folder); the DuckDB file is open
only while the lock is held.

When the metadata store is PostgreSQL, hub processes on several hosts share no folder, so
the index lives in PostgreSQL instead (:class:`PostgresUnitIndex`, tables ``unit_datasets``
and ``unit_tokens``), with the same numbering, the same guarantees, and commits of one
dataset serialised by a row lock in the database. :func:`open_unit_index` picks the index
that goes with the metadata store; both implement :class:`UnitNumbering`, and both share the
DuckDB side (token counts, the window, the returned SQL).
"""

from __future__ import annotations

import fcntl
import json
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError

from hub.contracts.model import Contract, FieldType, Role
from hub.contracts.validation import ERRORS_COLUMN, ROW_COLUMN, quote_ident
from hub.errors import Unavailable
from hub.privacy.noise import sum_decimals, to_fixed
from hub.storage.db import unit_datasets, unit_tokens

__all__ = [
    "BOUND_FIELDS",
    "FIXED_META",
    "PARTNER_COLUMN",
    "PRIO_COLUMN",
    "SEQ_COLUMN",
    "UNIT_COLUMN",
    "FixedColumn",
    "PostgresUnitIndex",
    "UnitIndex",
    "UnitNumbering",
    "anchor_sql",
    "open_unit_index",
]

UNIT_COLUMN = "__unit"
SEQ_COLUMN = "__seq"
PARTNER_COLUMN = "__partner"
PRIO_COLUMN = "__prio"
#: The columns the canonical copy of an extract carries after the contract's fields.
BOUND_FIELDS: tuple[pa.Field, ...] = (
    pa.field(UNIT_COLUMN, pa.int64()),
    pa.field(SEQ_COLUMN, pa.int32()),
    pa.field(PARTNER_COLUMN, pa.string()),
    pa.field(PRIO_COLUMN, pa.int64()),
)
#: Parquet metadata key of the fixed-point columns: {field: {column, clamp, decimals}} JSON.
FIXED_META = "tahub.fixed"
_MAX_SEQ = 2**31 - 1
_DATASET_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_BOUNDS_TABLE = "__bounds"
_TOKENS_TABLE = "__unit_tokens"
_ALIAS = "__unit_index"
_COUNTS_TABLE = "__unit_counts"
_RETURNED_VIEW = "__unit_returned"
_RETURNED = pa.schema([("token", pa.string()), ("unit", pa.int64()), ("rows_seen", pa.int64())])
_COPY_BATCH_ROWS = 65_536


class UnitNumbering(Protocol):
    """What a commit needs of a unit index (:class:`UnitIndex`, :class:`PostgresUnitIndex`)."""

    def number(self, con: duckdb.DuckDBPyConnection, contract: Contract, partner: str,
               table: str = "__checked") -> str:
        """Number the checked rows of ``table`` on ``con``, update and commit the index, and
        return the SQL of the numbered valid rows (see :meth:`UnitIndex.number`)."""
        ...

    @property
    def folders(self) -> tuple[Path, ...]:
        """The folders :meth:`number` needs its connection to reach (its DuckDB sandbox)."""
        ...

    def rows_seen(self, dataset: str) -> dict[str, tuple[int, int]]:
        """Token -> (unit id, rows seen) of ``dataset`` (tests and audits)."""
        ...


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

    @property
    def folders(self) -> tuple[Path, ...]:
        return (self._folder,)

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
        with self._locked(contract.dataset) as path:
            con.execute(f"ATTACH {_lit(str(path))} AS {_ALIAS}")
            try:
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {_ALIAS}.units "
                    "(token VARCHAR NOT NULL, unit BIGINT NOT NULL, rows_seen BIGINT NOT NULL)"
                )
                salt = _duckdb_salt(con)
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
                    f"FROM ({_counts_sql(contract, table)}) t "
                    f"LEFT JOIN {_ALIAS}.units u ON u.token = t.tok",
                    [int(base)],
                )
                _number_rows(con, contract, table, salt)
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
        return _numbered_sql(contract, partner, table)

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


class PostgresUnitIndex:
    """The unit index in the PostgreSQL metadata store, shared by hub processes on any host.

    Tables ``unit_datasets`` (per dataset: the last unit id handed out; its row is the
    dataset's lock) and ``unit_tokens`` (dataset, token -> unit id, rows seen), see
    ``hub.storage.db``. One commit is one PostgreSQL transaction: lock the dataset's row
    (``SELECT ... FOR UPDATE``, so commits of a dataset are serialised across processes and
    hosts), COPY this extract's (token, row count) pairs into a temporary table, one
    ``UPDATE ... FROM`` that adds the counts to ``rows_seen`` of known tokens and one
    ``INSERT ... SELECT`` that gives the other tokens the next ids, their ``RETURNING`` rows
    (token, unit, new total) COPied straight back out to DuckDB through Arrow, then the new
    last id, and COMMIT, all before :meth:`number` returns. Tokens move in bulk, never a row
    at a time. (Measured with ``bench/unit_index.py``: the two statements, on a table with
    fillfactor 50 so that the updates stay HOT, made a commit 1.5-3x cheaper than one
    ``INSERT ... ON CONFLICT DO UPDATE``, whose per-row speculative insertions and non-HOT
    updates dominated.)
    """

    def __init__(self, engine: sa.Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"PostgresUnitIndex needs PostgreSQL, not {engine.dialect.name}")
        self._engine = engine

    @property
    def folders(self) -> tuple[Path, ...]:
        return ()  # the index is in PostgreSQL

    def number(
        self,
        con: duckdb.DuckDBPyConnection,
        contract: Contract,
        partner: str,
        table: str = "__checked",
    ) -> str:
        """As :meth:`UnitIndex.number`, with the index in PostgreSQL; committed before return.

        A metadata store that cannot be reached raises :class:`~hub.errors.Unavailable`.
        """
        dataset = _dataset(contract.dataset)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_COUNTS_TABLE} AS "
                    f"{_counts_sql(contract, table)}")
        try:
            returned, salt = self._upsert(con, dataset)
        except (SQLAlchemyError, psycopg.Error) as exc:
            raise Unavailable("the metadata store is unavailable; retry later") from exc
        con.register(_RETURNED_VIEW, returned)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {_TOKENS_TABLE} AS "
                "SELECT c.tok, r.unit, r.rows_seen - c.n AS seen "
                f"FROM {_COUNTS_TABLE} c JOIN {_RETURNED_VIEW} r ON r.token = c.tok"
            )
        finally:
            con.unregister(_RETURNED_VIEW)
        _number_rows(con, contract, table, salt)
        return _numbered_sql(contract, partner, table)

    def _upsert(self, con: duckdb.DuckDBPyConnection, dataset: str) -> tuple[pa.Table, str]:
        """One transaction: the tokens in, (token, unit, rows_seen after) out (class doc),
        and the dataset's salt (made on its first commit)."""
        ud = unit_datasets
        with self._engine.begin() as conn:
            conn.execute(pg_insert(ud).values(dataset=dataset, last_unit=0,
                                              salt=secrets.token_hex(16))
                         .on_conflict_do_nothing())
            base_row = conn.execute(sa.select(ud.c.last_unit, ud.c.salt)
                                    .where(ud.c.dataset == dataset).with_for_update()).one()
            base, salt = int(base_row.last_unit), base_row.salt
            if salt is None:  # a dataset indexed before salts existed
                salt = secrets.token_hex(16)
                conn.execute(sa.update(ud).where(ud.c.dataset == dataset).values(salt=salt))
            raw = conn.connection.dbapi_connection
            assert isinstance(raw, psycopg.Connection)  # noqa: S101 - the psycopg dialect
            with raw.cursor() as cur:
                cur.execute("CREATE TEMP TABLE unit_tokens_in "
                            "(token text NOT NULL, n bigint NOT NULL) ON COMMIT DROP")
                reader = con.sql(f"SELECT tok, n FROM {_COUNTS_TABLE}").to_arrow_reader(
                    _COPY_BATCH_ROWS)
                with cur.copy("COPY unit_tokens_in (token, n) FROM STDIN (FORMAT csv)") as cp:
                    for batch in reader:
                        buf = pa.BufferOutputStream()
                        pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False))
                        cp.write(memoryview(buf.getvalue()))
                cur.execute("ANALYZE unit_tokens_in")
                out = pa.BufferOutputStream()
                # Known tokens first (the table's fillfactor keeps these updates HOT), then
                # the new ones, which the update left out; both RETURN (token, unit, total).
                for statement in (
                    "UPDATE unit_tokens u SET rows_seen = u.rows_seen + i.n "
                    "FROM unit_tokens_in i WHERE u.dataset = %(dataset)s AND u.token = i.token "
                    "RETURNING u.token, u.unit, u.rows_seen",
                    "INSERT INTO unit_tokens (dataset, token, unit, rows_seen) "
                    "SELECT %(dataset)s, i.token, %(base)s::bigint + row_number() OVER (), i.n "
                    "FROM unit_tokens_in i WHERE NOT EXISTS (SELECT FROM unit_tokens e "
                    "WHERE e.dataset = %(dataset)s AND e.token = i.token) "
                    "RETURNING token, unit, rows_seen",
                ):
                    with cur.copy(f"COPY ({statement}) TO STDOUT (FORMAT csv)",
                                  {"dataset": dataset, "base": base}) as cp:
                        for data in cp:
                            out.write(data)
            returned = _read_returned(out.getvalue())
            top = pc.max(returned["unit"]).as_py()
            if top is not None and top > base:
                conn.execute(sa.update(ud).where(ud.c.dataset == dataset)
                             .values(last_unit=top))
        return returned, str(salt)

    def rows_seen(self, dataset: str) -> dict[str, tuple[int, int]]:
        """Token -> (unit id, rows seen): for tests and audits (never served by the API)."""
        ut = unit_tokens
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(sa.select(ut.c.token, ut.c.unit, ut.c.rows_seen)
                                    .where(ut.c.dataset == _dataset(dataset))).all()
        except SQLAlchemyError as exc:
            raise Unavailable("the metadata store is unavailable; retry later") from exc
        return {str(t): (int(u), int(n)) for t, u, n in rows}


def open_unit_index(engine: sa.Engine, folder: Path) -> UnitNumbering:
    """The unit index that goes with the metadata store: PostgreSQL's own tables when the
    store is PostgreSQL (several hub processes and hosts share it), else the DuckDB files
    under ``folder`` (the embedded default)."""
    if engine.dialect.name == "postgresql":
        return PostgresUnitIndex(engine)
    return UnitIndex(folder)


# -- the SQL both indexes share ----------------------------------------------------------------
def _dataset(name: str) -> str:
    if not _DATASET_RE.match(name):
        raise ValueError(f"not a dataset name: {name!r}")
    return name


def _valid_sql(contract: Contract, table: str) -> str:
    """(row, token) of the rows of ``table`` that passed every check."""
    unit = anchor_sql(contract)
    return (f"SELECT {quote_ident(ROW_COLUMN)}, {unit} AS tok FROM {quote_ident(table)} "
            f"WHERE len({ERRORS_COLUMN}) = 0")


def anchor_sql(contract: Contract, alias: str | None = None) -> str:
    """A row's anchor: its first non-empty identifier of the person (the privacy unit, then
    the link fields; :mod:`hub.ingest.linkage` joins anchors that share identifiers)."""
    cols = [(f"{alias}." if alias else "") + quote_ident(f.name) for f in contract.identity]
    return cols[0] if len(cols) == 1 else f"coalesce({', '.join(cols)})"


def _counts_sql(contract: Contract, table: str) -> str:
    """(tok, n): this extract's rows per token."""
    return (f"SELECT tok, count(*) AS n FROM ({_valid_sql(contract, table)}) "
            "WHERE tok IS NOT NULL GROUP BY tok")


def _read_returned(data: pa.Buffer) -> pa.Table:
    """The CSV PostgreSQL COPYs out of the upsert, as an Arrow table of :data:`_RETURNED`."""
    if not data.size:
        return _RETURNED.empty_table()
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=_RETURNED.names),
        convert_options=pacsv.ConvertOptions(column_types=_RETURNED),
    )


def _duckdb_salt(con: duckdb.DuckDBPyConnection) -> str:
    """The dataset's salt in the attached DuckDB index (made on its first commit)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {_ALIAS}.salt (salt VARCHAR NOT NULL)")
    found = con.execute(f"SELECT salt FROM {_ALIAS}.salt").fetchall()
    if found:
        return str(found[0][0])
    salt = secrets.token_hex(16)
    con.execute(f"INSERT INTO {_ALIAS}.salt VALUES (?)", [salt])
    return salt


def prio_sql(contract: Contract, alias: str, salt: str) -> str:
    """31 bits of MD5 over the salt and the row's extract fields (``alias`` the row's table),
    as the high part of ``__prio`` (module docstring). NULL is written as chr(0), so that
    (a, NULL) and (NULL, a) differ."""
    values = ", ".join(f"coalesce(CAST({alias}.{quote_ident(f.name)} AS VARCHAR), chr(0))"
                       for f in contract.extract_fields)
    return (f"CAST(md5_number_lower(concat_ws(chr(31), {_lit(salt)}, {values})) "
            f"% {2**31} AS BIGINT)")


def _number_rows(con: duckdb.DuckDBPyConnection, contract: Contract, table: str,
                 salt: str) -> None:
    """``__bounds`` (row, unit, seq, prio) from ``__unit_tokens`` (tok, unit, seen): the one
    window function, over this extract's rows only."""
    row = quote_ident(ROW_COLUMN)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_BOUNDS_TABLE} AS "
        f"SELECT v.{row}, k.unit AS {UNIT_COLUMN}, "
        f"CAST(least(k.seen + row_number() OVER (PARTITION BY k.unit "
        f"ORDER BY v.{row}), {_MAX_SEQ}) AS INTEGER) AS {SEQ_COLUMN}, v.__h "
        f"FROM (SELECT c.{row}, {anchor_sql(contract, 'c')} AS tok, "
        f"{prio_sql(contract, 'c', salt)} AS __h FROM {quote_ident(table)} c "
        f"WHERE len(c.{ERRORS_COLUMN}) = 0) v JOIN {_TOKENS_TABLE} k ON v.tok = k.tok"
    )


def _numbered_sql(contract: Contract, partner: str, table: str) -> str:
    """The SQL :meth:`UnitNumbering.number` returns: valid rows, numbered, in file order."""
    src, row = quote_ident(table), quote_ident(ROW_COLUMN)
    cols = ", ".join(f"c.{quote_ident(f.name)}" for f in contract.extract_fields)
    fixed = "".join(f", {c.select('c.' + quote_ident(c.field))}"
                    for c in FixedColumn.of(contract))
    return (
        f"SELECT {cols}, b.{UNIT_COLUMN}, b.{SEQ_COLUMN}, "
        f"CAST({_lit(partner)} AS VARCHAR) AS {PARTNER_COLUMN}, "
        f"b.__h * {2**31} + b.{SEQ_COLUMN} AS {PRIO_COLUMN}{fixed} "
        f"FROM {src} c JOIN {_BOUNDS_TABLE} b ON b.{row} = c.{row} "
        f"ORDER BY c.{row}"
    )


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
