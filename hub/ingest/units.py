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

* ``__unit``    the unit's id (a new id for a token never seen before: the next ids, in the
                order of the tokens' first rows in the extract);
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

**Memory.** Only narrow values are joined, windowed and sorted: (token, count, first row)
per token and (row, unit, seq) per row, never the extract's wide rows, which the canonical
copy takes beside their numbers by position (:func:`_numbered_sql`). When those would not
fit in a quarter of the connection's memory limit, the tokens are split by a hash into
:func:`_passes` passes, each a bounded aggregate, index join, window and index update; the
numbers do not depend on the passes (tests/hub/test_commit_limits.py: 32 MB and 2 GB give
the same ids, seqs and priorities). A commit's memory is then the connection's limit plus
an Arrow batch of the file read and a row group of the copy written, whatever the
extract's size (docs/production.md, "Commit limits").

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
unique per unit. (The embedded index commits its update in one transaction per pass: a
crash between two leaves some tokens counted and not others, which again only leaves gaps.)

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

from hub.contracts.model import Contract, ContractField, FieldType, Role
from hub.contracts.validation import ERRORS_COLUMN, ROW_COLUMN, quote_ident
from hub.errors import Unavailable
from hub.privacy.noise import sum_decimals, to_fixed
from hub.storage.db import unit_datasets, unit_tokens
from hub.storage.locks import file_lock

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
    "dataset_name",
    "exclusive",
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
_NEW_TABLE = "__unit_new"
_WINDOWED_TABLE = "__unit_windowed"
#: What one row of an extract may take in a pass of numbering (a distinct token's text,
#: 73 characters from the connector, its count, first row and id, and hash-table slots).
_PASS_BYTES_PER_ROW = 256
_MAX_PASSES = 256
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
        """Token -> (unit id, rows seen) of ``dataset`` (tests, audits, and a dataset's move
        to the cluster's index: :mod:`hub.ingest.clustered`)."""
        ...

    def salt(self, dataset: str) -> str | None:
        """``dataset``'s secret salt, None before its first commit."""
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
        return self._folder / f"{dataset_name(dataset)}.duckdb"

    @contextmanager
    def _locked(self, dataset: str) -> Iterator[Path]:
        path = self.path(dataset)
        with exclusive(path.with_suffix(".lock"), self._lock):
            yield path

    def number(
        self,
        con: duckdb.DuckDBPyConnection,
        contract: Contract,
        partner: str,
        table: str = "__checked",
    ) -> str:
        """Number the valid rows of the checked ``table`` on ``con``; update the index.

        Returns the SQL of the valid rows in the order ``table`` holds them (the file's,
        stream batch by stream batch): the contract's extract fields, then
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
                passes = _passes(con, table)
                _known_and_new(con, contract, table, f"{_ALIAS}.units", int(base), passes)
                _number_rows(con, contract, table, passes)
                # In the passes of the numbering, one transaction each, so that an update of
                # millions of known tokens never has to fit the memory limit at once. A
                # crash between two leaves some tokens counted and others not: gaps in their
                # numbers, never a repeated one (module docstring), and a retry numbers
                # every token again from the index as it then is.
                for p in range(passes):
                    con.execute("BEGIN TRANSACTION")
                    try:
                        con.execute(
                            f"INSERT INTO {_ALIAS}.units SELECT tok, unit, n "
                            f"FROM {_TOKENS_TABLE} WHERE new AND {_in_pass('tok', p, passes)}"
                        )
                        con.execute(
                            f"UPDATE {_ALIAS}.units AS u SET rows_seen = u.rows_seen + k.n "
                            f"FROM (SELECT tok, n FROM {_TOKENS_TABLE} WHERE NOT new AND "
                            f"{_in_pass('tok', p, passes)}) AS k WHERE u.token = k.tok"
                        )
                        con.execute("COMMIT")
                    except BaseException:
                        con.execute("ROLLBACK")
                        raise
            finally:
                con.execute(f"DETACH {_ALIAS}")
        return _numbered_sql(contract, partner, table, salt)

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

    def salt(self, dataset: str) -> str | None:
        with self._locked(dataset) as path:
            if not path.exists():
                return None
            con = duckdb.connect(str(path), read_only=True)
            try:
                found = con.execute("SELECT salt FROM salt").fetchall()
            except duckdb.CatalogException:
                return None
            finally:
                con.close()
        return str(found[0][0]) if found else None


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
        dataset = dataset_name(contract.dataset)
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
        _number_rows(con, contract, table, _passes(con, table))
        return _numbered_sql(contract, partner, table, salt)

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
                                    .where(ut.c.dataset == dataset_name(dataset))).all()
        except SQLAlchemyError as exc:
            raise Unavailable("the metadata store is unavailable; retry later") from exc
        return {str(t): (int(u), int(n)) for t, u, n in rows}

    def salt(self, dataset: str) -> str | None:
        ud = unit_datasets
        try:
            with self._engine.connect() as conn:
                found = conn.execute(sa.select(ud.c.salt)
                                     .where(ud.c.dataset == dataset_name(dataset))).scalar()
        except SQLAlchemyError as exc:
            raise Unavailable("the metadata store is unavailable; retry later") from exc
        return None if found is None else str(found)


def open_unit_index(engine: sa.Engine, folder: Path) -> UnitNumbering:
    """The unit index that goes with the metadata store: PostgreSQL's own tables when the
    store is PostgreSQL (several hub processes and hosts share it), else the DuckDB files
    under ``folder`` (the embedded default)."""
    if engine.dialect.name == "postgresql":
        return PostgresUnitIndex(engine)
    return UnitIndex(folder)


@contextmanager
def exclusive(lock: Path, held: threading.Lock) -> Iterator[None]:
    """``held`` (this process's threads), then :func:`~hub.storage.locks.file_lock` on
    ``lock`` (other processes sharing the folder), until the block ends."""
    with held, file_lock(lock):
        yield


# -- the SQL both indexes share ----------------------------------------------------------------
def dataset_name(name: str) -> str:
    """``name``, refused unless it is a dataset name (safe as a file name)."""
    if not _DATASET_RE.match(name):
        raise ValueError(f"not a dataset name: {name!r}")
    return name


def _valid_sql(contract: Contract, table: str) -> str:
    """(row, token) of the rows of ``table`` that passed every check."""
    unit = anchor_sql(contract)
    return (f"SELECT {quote_ident(ROW_COLUMN)}, {unit} AS tok FROM {quote_ident(table)} "
            f"WHERE array_length({ERRORS_COLUMN}) = 0")


def anchor_sql(contract: Contract, alias: str | None = None) -> str:
    """A row's anchor: its first non-empty identifier of the person (the privacy unit, then
    the link fields; :mod:`hub.ingest.linkage` joins anchors that share identifiers)."""
    cols = [(f"{alias}." if alias else "") + quote_ident(f.name) for f in contract.identity]
    return cols[0] if len(cols) == 1 else f"coalesce({', '.join(cols)})"


def _counts_sql(contract: Contract, table: str, part: tuple[int, int] = (0, 1)) -> str:
    """(tok, n, first): this extract's rows per token, and the token's first row; only the
    tokens of pass ``part`` = (pass, passes) (:func:`_in_pass`)."""
    where = "" if part[1] == 1 else f" AND {_in_pass('tok', *part)}"
    return (f"SELECT tok, count(*) AS n, min({quote_ident(ROW_COLUMN)}) AS first "
            f"FROM ({_valid_sql(contract, table)}) WHERE tok IS NOT NULL{where} GROUP BY tok")


def _in_pass(token: str, p: int, passes: int) -> str:
    """SQL: the token ``token`` belongs to pass ``p`` of ``passes`` (a hash partition)."""
    return "true" if passes == 1 else f"hash({token}) % {passes} = {p}"


def _passes(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """In how many passes to count, join and number the tokens of ``table``, so that each
    pass's hash tables and sorts fit in a quarter of the connection's memory limit, taking
    every row for a distinct token (:data:`_PASS_BYTES_PER_ROW`); a power of two, 1 for
    all but large extracts under small limits.

    DuckDB spills a hash aggregate, join or window that outgrows the limit, but under a
    small limit (tests/hub/test_commit_limits.py: 64 MB) one over a whole large extract
    still runs out of memory; hash partitions of the tokens, one after the other, never
    need more than their share, and give the same numbers (a token's rows all fall in its
    pass; new ids are ranked by first row across passes, :func:`_known_and_new`)."""
    ((rows,),) = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchall()
    ((limit,),) = con.execute("SELECT current_setting('memory_limit')").fetchall()
    return _pass_count(int(rows), _bytes(str(limit)))


def _pass_count(rows: int, memory_limit: int) -> int:
    """:func:`_passes` of ``rows`` rows under ``memory_limit`` bytes."""
    share = max(memory_limit // 4, 1)
    passes = 1
    while passes * share < rows * _PASS_BYTES_PER_ROW and passes < _MAX_PASSES:
        passes *= 2
    return passes


def _bytes(size: str) -> int:
    """DuckDB's rendering of a size (``61.0 MiB``, ``2.0 GiB``, ``512 bytes``) in bytes."""
    m = re.match(r"^\s*([0-9.]+)\s*([KMGT]i?B|bytes?)?\s*$", size, re.IGNORECASE)
    if m is None:
        return 2**62  # no limit DuckDB can tell: one pass
    unit = (m.group(2) or "bytes").upper()
    power = "BKMGT".index(unit[0]) if unit[0] in "KMGT" else 0
    return int(float(m.group(1)) * (1024 if "I" in unit else 1000) ** power)


def _known_and_new(con: duckdb.DuckDBPyConnection, contract: Contract, table: str,
                   index: str, base: int, passes: int) -> None:
    """``__unit_tokens`` (tok, n, new, unit, seen): this extract's tokens, known ones with
    their id and rows seen, new ones with the next ids after ``base`` in the order of their
    first row, so that the ids depend neither on how DuckDB splits the work nor on its
    memory limit. The ranks are the ``rowid`` s of a table of first rows written in order
    (an external sort of one BIGINT), not a window over all new tokens at once, which
    would have to hold them all in memory."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_COUNTS_TABLE} (tok VARCHAR, n BIGINT, "
                "first BIGINT, unit BIGINT, rows_seen BIGINT)")
    for p in range(passes):
        con.execute(f"INSERT INTO {_COUNTS_TABLE} "
                    f"SELECT t.tok, t.n, t.first, u.unit, u.rows_seen "
                    f"FROM ({_counts_sql(contract, table, (p, passes))}) t "
                    f"LEFT JOIN (SELECT * FROM {index} "
                    f"WHERE {_in_pass('token', p, passes)}) u ON u.token = t.tok")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_NEW_TABLE} AS SELECT first "
                f"FROM {_COUNTS_TABLE} WHERE unit IS NULL ORDER BY first")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_TOKENS_TABLE} AS "
                f"SELECT tok, n, false AS new, unit, rows_seen AS seen FROM {_COUNTS_TABLE} "
                f"WHERE unit IS NOT NULL UNION ALL "
                f"SELECT c.tok, c.n, true, CAST(? + 1 + w.rowid AS BIGINT), 0 "
                f"FROM {_NEW_TABLE} w JOIN {_COUNTS_TABLE} c ON c.first = w.first",
                [base])
    con.execute(f"DROP TABLE {_COUNTS_TABLE}")
    con.execute(f"DROP TABLE {_NEW_TABLE}")


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
    (a, NULL) and (NULL, a) differ. Each value is hashed as text that DuckDB and Spark
    write alike (:func:`_hash_text`), so that both engines give a row the same priority."""
    values = ", ".join(
        f"coalesce({_hash_text(f, f'{alias}.{quote_ident(f.name)}')}, chr(0))"
        for f in contract.extract_fields)
    return (f"CAST(md5_number_lower(concat_ws(chr(31), {_lit(salt)}, {values})) "
            f"% {2**31} AS BIGINT)")


def _hash_text(f: ContractField, col: str) -> str:
    """A checked value as text for the priority's hash, the same in DuckDB and Spark SQL.

    Strings are themselves and integers their digits; a list joins its codes with chr(30).
    A number is not cast to text (the engines write doubles differently: ``1e+20`` and
    ``1.0E20``) but scaled by 2^20, which is exact, rounded half away from zero (both
    engines' ``round``) and written as a BIGINT: so values 2^-20 apart or less hash alike,
    as do all values of 2^63 and more (``__seq`` still tells them apart); beyond 2^43 the
    value itself is rounded. The hash only orders a unit's rows: any function of the row
    alone keeps the privacy argument (module docstring)."""
    if f.type is FieldType.CATEGORY_LIST:
        return f"array_to_string({col}, chr(30))"
    if f.type is FieldType.INTEGER:
        return f"CAST({col} AS VARCHAR)"
    if f.type is FieldType.NUMBER:
        scale = f"CAST('{float(2**20)!r}' AS DOUBLE)"
        return (f"CASE WHEN abs({col}) < CAST('{float(2**43)!r}' AS DOUBLE) "
                f"THEN CAST(CAST(round({col} * {scale}) AS BIGINT) AS VARCHAR) "
                f"WHEN abs({col}) < CAST('{float(2**63)!r}' AS DOUBLE) "
                f"THEN 'r' || CAST(CAST(round({col}) AS BIGINT) AS VARCHAR) ELSE 'h' END")
    return col


def _number_rows(con: duckdb.DuckDBPyConnection, contract: Contract, table: str,
                 passes: int) -> None:
    """``__bounds`` (row, unit, seq) from ``__unit_tokens`` (tok, unit, seen): one row per
    row of ``table``, in the order ``table`` holds its rows (NULL unit and seq for a row
    that failed a check or has no token); the one window function, over this extract's
    rows only, in :func:`_passes` passes.

    Only these narrow triples are joined, windowed and sorted, never the extract's wide
    rows: :func:`_numbered_sql` puts them beside the rows by position. DuckDB's hash join,
    window and sort spill to disk beyond the connection's memory limit, so a commit's
    memory does not grow with the extract (tests/hub/test_commit_limits.py).
    """
    row, t = quote_ident(ROW_COLUMN), quote_ident(table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_WINDOWED_TABLE} "
                "(pos BIGINT, row BIGINT, unit BIGINT, seq INTEGER)")
    for p in range(passes):  # each pass: its tokens' rows (module docstring of _passes)
        con.execute(
            f"INSERT INTO {_WINDOWED_TABLE} "
            f"SELECT v.pos, v.{row}, k.unit, CAST(least(k.seen + row_number() OVER "
            f"(PARTITION BY k.unit ORDER BY v.{row}), {_MAX_SEQ}) AS INTEGER) "
            f"FROM (SELECT rowid AS pos, {row}, {anchor_sql(contract)} AS tok FROM {t} "
            f"WHERE array_length({ERRORS_COLUMN}) = 0) v "
            f"JOIN (SELECT tok, unit, seen FROM {_TOKENS_TABLE} "
            f"WHERE {_in_pass('tok', p, passes)}) k ON v.tok = k.tok"
            + ("" if passes == 1 else f" WHERE {_in_pass('v.tok', p, passes)}")
        )
    # one row per row of the table, in its order (rows without numbers, which only a table
    # with rejected rows has, get NULLs)
    ((numbered,),) = con.execute(f"SELECT count(*) FROM {_WINDOWED_TABLE}").fetchall()
    ((rows,),) = con.execute(f"SELECT count(*) FROM {t}").fetchall()
    source = _WINDOWED_TABLE if numbered == rows else (
        f"(SELECT c.rowid AS pos, c.{row} AS row, w.unit, w.seq FROM {t} c "
        f"LEFT JOIN {_WINDOWED_TABLE} w ON w.pos = c.rowid)")
    # sorted back into the table's order a range of positions per pass, appended in turn
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_BOUNDS_TABLE} "
                "(row BIGINT, unit BIGINT, seq INTEGER)")
    size = -(-int(rows) // passes)
    for p in range(passes):
        con.execute(f"INSERT INTO {_BOUNDS_TABLE} SELECT row, unit, seq FROM {source} "
                    f"WHERE pos >= {p * size} AND pos < {(p + 1) * size} ORDER BY pos")
    con.execute(f"DROP TABLE {_WINDOWED_TABLE}")


def _numbered_sql(contract: Contract, partner: str, table: str, salt: str) -> str:
    """The SQL :meth:`UnitNumbering.number` returns: the valid rows, numbered, in the order
    ``table`` holds them (the file's, batch by batch of the stream that filled it).

    ``table`` and ``__bounds`` hold the same rows in the same order (``__bounds`` is sorted
    by the ``rowid`` of ``table``), so they are joined by position (DuckDB's ``POSITIONAL
    JOIN`` of two table scans: no hash table, no sort of the wide rows); a row whose numbers
    are not its own stops the commit (never seen: both tables keep their insertion order,
    the connection's ``preserve_insertion_order``).
    """
    row = quote_ident(ROW_COLUMN)
    cols = ", ".join(f"c.{quote_ident(f.name)}" for f in contract.extract_fields)
    fixed = "".join(f", {c.select('c.' + quote_ident(c.field))}"
                    for c in FixedColumn.of(contract))
    seq = (f"CASE WHEN b.row = c.{row} THEN b.seq ELSE "
           f"CAST(error('unit numbers out of step with the rows') AS INTEGER) END")
    return (
        f"SELECT {cols}, b.unit AS {UNIT_COLUMN}, {seq} AS {SEQ_COLUMN}, "
        f"CAST({_lit(partner)} AS VARCHAR) AS {PARTNER_COLUMN}, "
        f"{prio_sql(contract, 'c', salt)} * {2**31} + b.seq AS {PRIO_COLUMN}{fixed} "
        f"FROM {quote_ident(table)} c POSITIONAL JOIN {_BOUNDS_TABLE} b "
        f"WHERE b.unit IS NOT NULL"
    )


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
