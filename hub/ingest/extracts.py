"""Checking an uploaded extract against its contract, on the hub (never trusting the connector).

The checks run in this order, each reporting every problem it finds at once:

1. the file is a readable Parquet file (only its footer is read);
2. its key-value metadata names the declared dataset and contract version and carries the
   network key id (``tahub.dataset``, ``tahub.contract_version``, ``tahub.key_id``), as
   ``tahub-connect`` writes them;
3. its columns are exactly the contract's extract fields with compatible Arrow types; an
   extra column gets a hint when it looks like an identifier or free text, which the hub
   never accepts;
4. it has rows (else :class:`~hub.errors.EmptyExtract`), and no more than
   :class:`ExtractLimits` allow (else :class:`~hub.errors.ExtractOverLimit`): rows per
   extract and decoded bytes per extract, from the footer at once, then again while the rows
   stream (a footer may lie), with decoded bytes per uploaded byte, so that a small file of
   millions of copies of one row (a decompression bomb) is stopped after a few megabytes
   decoded, within seconds, not after minutes of work and an out-of-memory;
5. every row passes the contract's validating query (``hub.contracts.validation``,
   ``Side.HUB``), run by DuckDB over the file's record batches as pyarrow streams them, so that a
   multi-gigabyte extract is never loaded into memory at once.

The rows are streamed through pyarrow rather than read by DuckDB's own Parquet reader on
purpose: DuckDB's optimizer trusts the file's column statistics, so a file whose footer
claims ``min(amount) = 0`` while a row holds ``-5`` (or whose NaN values the statistics leave
out) would have its checks folded away. No statistic written by the partner reaches DuckDB.
For the same reason, when asked for a ``canonical`` copy the hub writes the checked rows
itself (contract types, its own statistics) and stores that, never the partner's bytes:
later queries read only what was checked, in one schema across all partners.

Pages written with CRC checksums (``tahub-connect`` writes them) are verified as they are
read: a corrupted page is refused with its row group named.

Any failure of the file raises :class:`~hub.errors.ExtractInvalid` listing the errors
(capped, with the total). A failure of the hub's own (DuckDB out of memory, say) raises
:class:`~hub.errors.Unavailable` and is never blamed on the file. Messages never carry the
file's path, a raw pyarrow/DuckDB message, or the value of an identifier column.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import structlog
from stdnum import iban

from hub.contracts.extractformat import (
    META_CONNECTOR_VERSION,
    META_CONTRACT_VERSION,
    META_DATASET,
    META_KEY_ID,
    extract_schema,
)
from hub.contracts.model import Contract, ContractField, FieldType
from hub.contracts.rowcheck import CheckResult, check_relation, valid_rows_sql
from hub.contracts.validation import ROW_COLUMN, Side
from hub.engines.runner import UnreadableInput
from hub.errors import (
    MAX_LISTED_ERRORS,
    EmptyExtract,
    ExtractInvalid,
    ExtractOverLimit,
    OutOfCapacity,
    RowError,
    Unavailable,
)
from hub.ingest.units import BOUND_FIELDS, FIXED_META, FixedColumn, UnitNumbering
from hub.settings import Settings
from hub.storage.sandbox import DuckLimits, sandboxed_duckdb

if TYPE_CHECKING:
    from hub.ingest.clustered import ClusterCommit

__all__ = [
    "KEY_ID_RE",
    "ExtractReport",
    "canonical_schema",
    "check_extract",
]

KEY_ID_RE = re.compile(r"^[0-9a-f]{8}$")

_USE_CONNECTOR = "write extracts with tahub-connect, which records it"
_NEVER = "the hub never accepts identifiers or free text"
# Column names that suggest a direct identifier (matched on the name's words).
_IDENTIFIER_WORDS = {
    "name", "names", "firstname", "lastname", "surname", "fullname", "forename", "givenname",
    "email", "mail", "phone", "mobile", "msisdn", "tel", "telephone", "fax", "iban", "bic",
    "swift", "passport", "address", "street", "postcode", "zip", "birth", "dob", "birthday",
    "ssn", "nin", "account", "acct", "card", "pan", "ip", "licence", "license", "document",
}
_IDENTIFIER_PARTS = (
    "name", "email", "phone", "iban", "passport", "address", "birth", "account",
    "id_number", "idnumber", "national_id", "social_security", "tax_id", "personal_id",
)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE_RE = re.compile(r"^\+?[0-9(][0-9 ().-]{5,}[0-9]$")
_NOT_PHONE_RE = re.compile(r"^(\d{4}-\d{2}(-\d{2})?|\d+\.\d+)$")  # dates and decimals
_log = structlog.get_logger("hub.ingest.extracts")
_SNIFF_ROWS = 256
_BATCH_ROWS = 64 * 1024
_SAMPLE_ROWS = 4096  # rows read to estimate an extract's decoded size
_DEFAULT_DUCK = DuckLimits(threads=2, memory_limit="2GB")
_ROW_GROUP_ROWS = 512 * 1024  # rows per row group of the canonical copy
_INTEGER_TYPES = (
    pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
)




@dataclass(frozen=True)
class ExtractReport:
    """What the hub learnt checking one extract; stored with the extract as its report."""

    dataset: str
    contract_version: int
    rows: int
    columns: tuple[str, ...]
    key_id: str
    connector_version: str | None
    checked_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "contract_version": self.contract_version,
            "rows": self.rows,
            "columns": list(self.columns),
            "key_id": self.key_id,
            "connector_version": self.connector_version,
            "checked_at": self.checked_at.isoformat(),
        }


@dataclass(frozen=True)
class ExtractLimits:
    """How much one extract may hold once decoded (settings ``TAHUB_MAX_EXTRACT_ROWS``,
    ``TAHUB_MAX_DECODED_BYTES``, ``TAHUB_MAX_DECODED_RATIO``; per member: ``tahub admin
    member limits``). Decoded bytes are those of the rows as Arrow holds them in memory."""

    # the settings' defaults, in the order of hub.storage.db.MEMBER_LIMITS
    max_rows: int = Settings.model_fields["max_extract_rows"].default
    max_decoded_bytes: int = Settings.model_fields["max_decoded_bytes"].default
    max_ratio: int = Settings.model_fields["max_decoded_ratio"].default  # real extracts: 4-9

    def over(self, rows: int, decoded: int, size: int) -> ExtractOverLimit | None:
        """The refusal for an extract of ``size`` bytes once ``rows`` rows of ``decoded``
        bytes are seen, or None."""
        if rows > self.max_rows:
            return ExtractOverLimit(
                f"the extract holds more than {self.max_rows:,} rows, the most one extract "
                "may hold (max_extract_rows); split the export into several extracts",
                rule="max_extract_rows", field="rows")
        if decoded > self.max_decoded_bytes:
            return ExtractOverLimit(
                f"the extract decodes to more than {self.max_decoded_bytes:,} bytes, the most "
                "one extract may (max_decoded_bytes); split the export into several extracts",
                rule="max_decoded_bytes", field="rows")
        if decoded > self.max_ratio * max(size, 1):
            return ExtractOverLimit(
                f"the extract decodes to more than {self.max_ratio} times its {size:,} bytes "
                "(max_decoded_ratio): a file of many repeated rows is refused as a "
                "decompression bomb; real extracts decode to 4-9 times their size",
                rule="max_decoded_ratio", field="rows")
        return None


_DEFAULT_LIMITS = ExtractLimits()


def check_extract(
    path: Path,
    contract: Contract,
    *,
    canonical: Path | None = None,
    duck: DuckLimits = _DEFAULT_DUCK,
    limits: ExtractLimits = _DEFAULT_LIMITS,
    units: UnitNumbering | None = None,
    partner: str | None = None,
    cluster: ClusterCommit | None = None,
) -> ExtractReport:
    """Check the Parquet file ``path`` against ``contract`` (see the module docstring).

    When every check passes and ``canonical`` is given, the checked rows are written there
    as zstd Parquet with the contract's types and the ``tahub.*`` metadata. ``duck``
    bounds the DuckDB sandbox that checks the rows (threads, memory, where it spills);
    ``limits`` what the extract may hold (:class:`ExtractLimits`).
    With ``units`` (and the
    uploading ``partner``), the rows are numbered for contribution bounding before they
    are written (``hub.ingest.units``): the copy gets the ``__unit``, ``__seq`` and ``__partner``
    columns and the index is updated. With ``cluster`` instead (``TAHUB_ENGINE=spark``), the
    rows are checked and numbered there and ``canonical`` becomes a folder object
    (:mod:`hub.ingest.clustered`); ``path`` must be where the cluster reads it.
    """
    if (units is None) != (partner is None) and cluster is None:
        raise ValueError("units and partner go together")
    bounding = None if units is None or partner is None else (units, partner)
    rows = None
    if cluster is not None:
        if canonical is None or partner is None:
            raise ValueError("a commit on the cluster writes a numbered canonical copy")
        rows = partial(_rows_on_cluster, cluster, path, contract, canonical, partner)
    with _open(path) as parquet:
        return _check(parquet, contract, canonical, duck, bounding,
                      _Budget(limits, path.stat().st_size), rows)


def _check(
    parquet: pq.ParquetFile,
    contract: Contract,
    canonical: Path | None,
    duck: DuckLimits,
    bounding: tuple[UnitNumbering, str] | None,
    budget: _Budget,
    on_cluster: Callable[[ExtractReport, int], int] | None = None,
) -> ExtractReport:
    schema = parquet.schema_arrow
    meta = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
            for k, v in (schema.metadata or {}).items()}
    problems = _metadata_errors(meta, contract) + _column_errors(parquet, contract)
    if problems:
        raise ExtractInvalid(
            f"the extract does not fit contract {contract.dataset} v{contract.version}: "
            f"{_plural(len(problems), 'problem')} with its columns or metadata",
            errors=problems[:MAX_LISTED_ERRORS],
            total_errors=len(problems),
        )
    if parquet.metadata.num_rows == 0:
        raise EmptyExtract("the extract has no rows; there is nothing to share")
    budget.check_footer(parquet, [f.name for f in contract.extract_fields])
    report = ExtractReport(
        dataset=contract.dataset,
        contract_version=contract.version,
        rows=0,
        columns=tuple(f.name for f in contract.extract_fields),
        key_id=meta[META_KEY_ID],
        connector_version=meta.get(META_CONNECTOR_VERSION, "")[:40] or None,
        checked_at=datetime.now(UTC),
    )
    if on_cluster is not None:
        rows = on_cluster(report, parquet.metadata.num_rows)
    else:
        rows = _check_rows(parquet, contract, report, canonical, duck, bounding, budget)
    return replace(report, rows=rows)


def _rows_on_cluster(cluster: ClusterCommit, path: Path, contract: Contract, canonical: Path,
                     partner: str, report: ExtractReport, footer_rows: int) -> int:
    """Rows checked, numbered and copied on the cluster (:mod:`hub.ingest.clustered`)."""
    try:
        result = cluster.check(path, contract, canonical, partner,
                               canonical_schema(contract, report, bounded=True))
    except UnreadableInput as exc:
        raise ExtractInvalid(
            "the extract's data cannot be read: a page is corrupt (a page checksum does "
            "not match, or a page cannot be decoded); write it again with tahub-connect",
            errors=[RowError(field=None, reason="corrupt Parquet data")]) from exc
    if result.rows != footer_rows:
        raise ExtractInvalid(
            f"the extract's footer declares {footer_rows} rows but holds {result.rows}; "
            "write it again with tahub-connect",
            errors=[RowError(field=None, reason="row count differs from the footer")])
    return _rows_or_refusal(result, contract)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ExtractInvalid(
            "the extract is not a readable Parquet file (corrupt, truncated, or another "
            "format); write it again with tahub-connect",
            errors=[RowError(field=None, reason="not a readable Parquet file")],
        ) from exc


def _shown(value: str) -> str:
    return repr(value[:63])


def _metadata_errors(meta: dict[str, str], contract: Contract) -> list[RowError]:
    errors = [
        RowError(field=key, reason=f"missing from the file's metadata; {_USE_CONNECTOR}")
        for key in (META_DATASET, META_CONTRACT_VERSION, META_KEY_ID)
        if key not in meta
    ]
    dataset = meta.get(META_DATASET)
    if dataset is not None and dataset != contract.dataset:
        errors.append(RowError(
            field=META_DATASET,
            reason=f"the file was written for dataset {_shown(dataset)}, "
            f"but the upload declares {contract.dataset!r}",
        ))
    version = meta.get(META_CONTRACT_VERSION)
    if version is not None and version.strip() != str(contract.version):
        errors.append(RowError(
            field=META_CONTRACT_VERSION,
            reason=f"the file was written for contract version {_shown(version)}, "
            f"but the upload declares version {contract.version}",
        ))
    key_id = meta.get(META_KEY_ID)
    if key_id is not None and not KEY_ID_RE.match(key_id):
        errors.append(RowError(
            field=META_KEY_ID,
            reason="not a network key id (8 lower-case hex digits); " + _USE_CONNECTOR,
        ))
    return errors


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text(t.value_type)
    return bool(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    )


def _compatible(kind: FieldType, t: pa.DataType) -> bool:
    if kind in (FieldType.TOKEN, FieldType.CATEGORY, FieldType.PERIOD):
        return _is_text(t)
    if kind is FieldType.INTEGER:
        return t in _INTEGER_TYPES
    if kind is FieldType.NUMBER:
        return t in _INTEGER_TYPES or t in (pa.float32(), pa.float64())
    if kind is FieldType.CATEGORY_LIST:
        return (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_text(t.value_type)
    raise AssertionError(f"unhandled field type {kind}")  # pragma: no cover


_EXPECTED = {
    FieldType.TOKEN: "text (string) holding pseudonymised tokens",
    FieldType.CATEGORY: "text (string) holding one code",
    FieldType.PERIOD: "text (string) holding a month 'YYYY-MM'",
    FieldType.INTEGER: "a whole number (int64)",
    FieldType.NUMBER: "a number (float64)",
    FieldType.CATEGORY_LIST: "a list of codes (list<string>)",
}


def _column_errors(parquet: pq.ParquetFile, contract: Contract) -> list[RowError]:
    schema = parquet.schema_arrow
    counts = Counter(schema.names)
    fields = {f.name: f for f in contract.fields}
    errors: list[RowError] = []
    for name in sorted(n for n, c in counts.items() if c > 1):
        errors.append(RowError(field=name, reason=f"the column appears {counts[name]} times"))
    for f in contract.extract_fields:
        if f.name not in counts:
            errors.append(RowError(field=f.name, reason=f"missing column: {_EXPECTED[f.type]}"))
        elif counts[f.name] == 1:
            actual = schema.field(f.name).type
            if not _compatible(f.type, actual):
                errors.append(RowError(
                    field=f.name,
                    reason=f"wrong type {actual}: expected {_EXPECTED[f.type]}",
                ))
    for name in dict.fromkeys(schema.names):
        if name in fields and not fields[name].provided_by_hub:
            continue
        errors.append(RowError(field=name, reason=_extra_reason(parquet, name, fields, contract)))
    return errors


def _extra_reason(
    parquet: pq.ParquetFile, name: str, fields: dict[str, ContractField], contract: Contract
) -> str:
    where = f"contract {contract.dataset} v{contract.version}"
    if name in fields:  # the partner field: never uploaded
        return (
            f"extra column: {name!r} is stamped by the hub from the uploader's credentials "
            "and must not be uploaded"
        )
    if _name_looks_identifying(name):
        return (
            f"extra column not in {where}; its name suggests an identifier: {_NEVER}. "
            "Remove it, or pseudonymise it into a contract field with tahub-connect"
        )
    looks = _sniff(parquet, name)
    if looks == "identifier":
        return (
            f"extra column not in {where}; its values look like identifiers (e-mail "
            f"addresses, phone numbers or IBANs): {_NEVER}. Remove it"
        )
    if looks == "free_text":
        return f"extra column not in {where}; its values look like free text: {_NEVER}. Remove it"
    return f"extra column not in {where}; remove it"


def _name_looks_identifying(name: str) -> bool:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    words = set(re.split(r"[^a-z0-9]+", spaced))
    flat = re.sub(r"[^a-z0-9]+", "_", spaced)
    return bool(words & _IDENTIFIER_WORDS) or any(p in flat for p in _IDENTIFIER_PARTS)


def _looks_like_identifier(value: str) -> bool:
    v = value.strip()
    if _EMAIL_RE.match(v):
        return True
    digits = sum(c.isdigit() for c in v)
    if _PHONE_RE.match(v) and 7 <= digits <= 15 and not _NOT_PHONE_RE.match(v):
        return v.startswith(("+", "00")) or digits >= 9
    return len(v) >= 15 and v[:2].isalpha() and bool(iban.is_valid(v))


def _sniff(parquet: pq.ParquetFile, name: str) -> str | None:
    """'identifier', 'free_text' or None, from the first few values of a text column."""
    index = parquet.schema_arrow.get_field_index(name)  # -1 when the name is repeated
    if index < 0 or not _is_text(parquet.schema_arrow.field(index).type):
        return None
    try:
        batch = next(parquet.iter_batches(batch_size=_SNIFF_ROWS, columns=[name]), None)
    except (pa.ArrowException, OSError, ValueError):
        return None
    if batch is None:
        return None
    values = [v for v in batch.column(0).to_pylist() if isinstance(v, str) and v.strip()]
    if not values:
        return None
    if sum(map(_looks_like_identifier, values)) >= max(1, len(values) // 5):
        return "identifier"
    mean_length = sum(map(len, values)) / len(values)
    mean_spaces = sum(v.count(" ") for v in values) / len(values)
    if mean_length > 40 or mean_spaces >= 4:
        return "free_text"
    return None


class _Budget:
    """An extract's :class:`ExtractLimits` against its uploaded size, spent as rows stream."""

    def __init__(self, limits: ExtractLimits, size: int) -> None:
        self.limits, self.size = limits, size
        self.rows = self.decoded = 0
        self.refusal: ExtractOverLimit | None = None

    def check_footer(self, parquet: pq.ParquetFile, names: list[str]) -> None:
        """Before the rows stream: the footer's rows, and the decoded bytes they will take,
        estimated from the first rows (at least the pages' uncompressed bytes), so that a
        bomb is refused at once; :meth:`spend` then holds the real numbers to the limits."""
        meta = parquet.metadata
        pages = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        try:
            first = next(parquet.iter_batches(batch_size=_SAMPLE_ROWS, columns=names))
            estimate = first.nbytes * meta.num_rows // max(first.num_rows, 1)
        except (StopIteration, pa.ArrowException, OSError, ValueError):
            estimate = 0  # an unreadable page: the stream finds it and names its row group
        refusal = self.limits.over(meta.num_rows, max(pages, estimate), self.size)
        if refusal is not None:
            raise refusal

    def spend(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self.decoded += batch.nbytes
        self.refusal = self.limits.over(self.rows, self.decoded, self.size)
        if self.refusal is not None:
            raise self.refusal


class _Batches:
    """The file's rows in record batches, numbered from 1 in ``ROW_COLUMN``, read one row
    group at a time (page checksums verified) and spent against the extract's budget.

    Remembers which row group could not be read, so that a corrupt page (the partner's
    fault) is told apart from a failure of the hub's own DuckDB (not the partner's).
    """

    def __init__(self, parquet: pq.ParquetFile, names: list[str], budget: _Budget) -> None:
        self._parquet, self._names, self.budget = parquet, names, budget
        self.failed: int | None = None  # the row group that could not be read

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        start = 1
        for group in range(self._parquet.num_row_groups):
            batches = self._parquet.iter_batches(
                batch_size=_BATCH_ROWS, row_groups=[group], columns=self._names)
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError, ValueError):
                    self.failed = group
                    raise
                self.budget.spend(batch)
                numbers = pa.array(range(start, start + batch.num_rows), pa.int64())
                yield batch.append_column(ROW_COLUMN, numbers)
                start += batch.num_rows


def _check_rows(
    parquet: pq.ParquetFile,
    contract: Contract,
    report: ExtractReport,
    canonical: Path | None,
    duck: DuckLimits,
    bounding: tuple[UnitNumbering, str] | None,
    budget: _Budget,
) -> int:
    names = [f.name for f in contract.extract_fields]
    schema = pa.schema([parquet.schema_arrow.field(n) for n in names])
    source = _Batches(parquet, names, budget)
    stream = pa.RecordBatchReader.from_batches(
        schema.append(pa.field(ROW_COLUMN, pa.int64())), iter(source)
    )
    try:
        folders = bounding[0].folders if bounding is not None else ()
        with sandboxed_duckdb(duck, folders=folders) as con:
            con.register("extract", stream)
            result = check_relation(con, contract, "extract", Side.HUB)
            if result.rows and not result.total_errors and canonical is not None:
                _write_canonical(con, contract, report, canonical, bounding)
    except (duckdb.Error, pa.ArrowException, OSError, ValueError, ExtractOverLimit) as exc:
        if canonical is not None:
            canonical.unlink(missing_ok=True)
        if budget.refusal is not None:
            raise budget.refusal from None
        if source.failed is not None:
            where = f"row group {source.failed + 1} of {parquet.num_row_groups}"
            raise ExtractInvalid(
                f"the extract's data cannot be read: {where} is corrupt (a page checksum "
                "does not match, or a page cannot be decoded); write it again with "
                "tahub-connect",
                errors=[RowError(field=None, reason=f"corrupt Parquet data in {where}")],
            ) from exc
        if isinstance(exc, duckdb.OutOfMemoryException):
            raise _out_of_capacity(exc, duck) from exc
        if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowException):
            raise  # the hub's own disk: the caller translates it
        _log.error("extract.check_failed", error=type(exc).__name__)
        raise Unavailable("the hub could not check this extract; retry later") from exc
    return _rows_or_refusal(result, contract)


def _rows_or_refusal(result: CheckResult, contract: Contract) -> int:
    """The checked rows, or the refusal of an extract without rows or with broken ones."""
    if result.rows == 0:
        raise EmptyExtract("the extract has no rows; there is nothing to share")
    if result.total_errors:
        raise ExtractInvalid(
            f"{result.rejected_rows} of {result.rows} rows break contract "
            f"{contract.dataset} v{contract.version} "
            f"({_plural(result.total_errors, 'error')})",
            errors=result.errors,
            total_errors=result.total_errors,
        )
    return result.rows


def _out_of_capacity(exc: duckdb.OutOfMemoryException, duck: DuckLimits) -> OutOfCapacity:
    """The 507 of a check that does not fit: over the memory limit even spilling, or over
    the disk it may spill to (DuckDB says which)."""
    if "max_temp_directory_size" in str(exc) or "temp directory" in str(exc).lower():
        limit = duck.max_temp_size or "90% of the free disk"
        return OutOfCapacity(
            f"checking this extract needs more temporary disk than one DuckDB connection of "
            f"the hub may spill to ({limit}): the hub's operator raises "
            "TAHUB_DUCKDB_MAX_TEMP_SIZE or frees disk under TAHUB_DUCKDB_TEMP_DIR; the "
            "upload is kept, commit it again then",
            rule="max_temp_size", setting="TAHUB_DUCKDB_MAX_TEMP_SIZE", limit=limit)
    return OutOfCapacity(
        f"checking this extract needs more memory than one DuckDB connection of the "
        f"hub may use ({duck.memory_limit}), even spilling to disk: the hub's "
        "operator raises TAHUB_DUCKDB_MEMORY_LIMIT (or gives its temporary folder "
        "more disk); the upload is kept, commit it again then",
        rule="memory_limit", setting="TAHUB_DUCKDB_MEMORY_LIMIT", limit=duck.memory_limit)


def canonical_schema(contract: Contract, report: ExtractReport, bounded: bool) -> pa.Schema:
    """The canonical copy's schema and ``tahub.*`` metadata: the contract's types, then,
    numbered for contribution bounding (``bounded``), :data:`BOUND_FIELDS` and the
    :class:`FixedColumn` s with their ``tahub.fixed`` record."""
    meta = {
        META_DATASET: contract.dataset,
        META_CONTRACT_VERSION: str(contract.version),
        META_KEY_ID: report.key_id,
    }
    if report.connector_version:
        meta[META_CONNECTOR_VERSION] = report.connector_version
    schema = extract_schema(contract, meta)
    if not bounded:
        return schema
    fixed = FixedColumn.of(contract)
    for f in (*BOUND_FIELDS, *(pa.field(c.column, c.arrow_type) for c in fixed)):
        schema = schema.append(f)
    if fixed:
        schema = schema.with_metadata(
            {**(schema.metadata or {}), FIXED_META.encode(): FixedColumn.metadata(fixed)})
    return schema


def _write_canonical(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    report: ExtractReport,
    dest: Path,
    bounding: tuple[UnitNumbering, str] | None = None,
) -> None:
    """Write the checked rows, typed by the validating query, to ``dest``: in file order,
    or, numbered for contribution bounding when ``bounding`` is given, in the order DuckDB
    holds them (the file's within each batch of the stream; ``__seq`` follows the file's
    order whatever the order of the copy: ``hub.ingest.units``)."""
    schema = canonical_schema(contract, report, bounding is not None)
    query = valid_rows_sql(contract)
    if bounding is not None:
        units, partner = bounding
        query = units.number(con, contract, partner)
    rows = con.sql(query).to_arrow_reader(_ROW_GROUP_ROWS)
    with pq.ParquetWriter(dest, schema, compression="zstd", write_page_checksum=True) as writer:
        for batch in rows:
            writer.write_batch(batch.cast(schema))
