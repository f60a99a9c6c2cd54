"""``tahub-connect check``: how the mapping reads an export, before anything is written.

:func:`check_export` reads the export and parses every field exactly as ``push`` would
(:func:`~connectors.partner.pipeline.read_export`), checks every value against the
contract, and normalises identifiers (no network key is needed: nothing is hashed). It
reports, per field, a few raw values beside what they became, how many rows the field
rejects and why; what was assumed to read the file; the magnitude warnings (amounts 100
times too large); the columns left behind; and whether ``push`` would stop.

Raw values are masked as everywhere else (:mod:`connectors.partner.masking`); an
identifier is shown masked beside the masked normalised form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as default
from pathlib import Path

import duckdb

from connectors.partner.checking import collect_problems
from connectors.partner.convert import ParsedExport
from connectors.partner.fieldmapping import FieldMapping
from connectors.partner.leftovers import left_behind
from connectors.partner.limits import ConnectorLimits
from connectors.partner.magnitude import MagnitudeWarning, magnitude_warnings
from connectors.partner.mapping import Mapping
from connectors.partner.masking import mask_identifiers
from connectors.partner.pipeline import ProgressHook, read_export
from connectors.partner.pseudonymise import InvalidIdentifier, normalise
from connectors.partner.rejects import first_rejects, reasons
from connectors.partner.report import DroppedColumn, ReasonCount
from connectors.partner.sources import SourceTable, open_duckdb
from connectors.partner.tokens import start_tokens
from hub.contracts.model import ContractField, ContractRegistry, FieldType
from hub.contracts.validation import ROW_COLUMN, quote_ident
from hub.errors import RowError

__all__ = ["CheckReport", "FieldPreview", "check_export"]

_SCANNED = 500
_DIGIT_RE = re.compile(r"\d+")
_SHAPE_RE = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class FieldPreview:
    """One field: its columns, a few (raw, parsed) pairs, and the rows it rejects."""

    field: str
    source: str  # the column(s), or "constant ..."
    samples: list[tuple[str, str]] = default(default_factory=list)
    rejected: int = 0
    reason: str | None = None  # the most frequent
    example: tuple[str, str] | None = None  # (raw, reason) of the first rejected value


@dataclass(frozen=True)
class CheckReport:
    """What ``check`` found (see the module docstring)."""

    dataset: str
    contract_version: int
    source: Path
    rows_read: int
    rows_rejected: int
    max_reject_ratio: float
    notes: list[str]
    fields: list[FieldPreview]
    warnings: list[MagnitudeWarning]
    dropped: list[DroppedColumn]
    reasons: list[ReasonCount]
    errors: list[RowError]

    @property
    def reject_ratio(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    @property
    def would_stop(self) -> bool:
        """Whether ``push`` would refuse this export (and write no extract)."""
        too_many = self.rows_rejected == self.rows_read or self.reject_ratio > self.max_reject_ratio
        return too_many or any(w.enforced for w in self.warnings)


def _raw_sql(fm: FieldMapping, src: SourceTable) -> str:
    def text(name: str) -> str:
        return f"CAST(s.{quote_ident(name)} AS VARCHAR)"

    names = fm.columns or ([fm.column] if fm.column else [])
    raw = " || ' | ' || ".join(f"coalesce({text(n)}, '')" for n in names)
    for extra in (fm.currency_column, fm.region_column):
        if extra:
            raw = f"{raw} || ' ' || coalesce({text(extra)}, '')"
    return raw


def _shown(value: object) -> str:
    if value is None:
        return "(unknown)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{round(value, 4):f}".rstrip("0").rstrip(".") or "0"
    return str(value)


def _identifier(f: ContractField, fm: FieldMapping, raw: str, parsed: str | None) -> str:
    assert f.identifier_kind is not None  # noqa: S101 - guaranteed by ContractField
    if parsed is None:
        return "(unknown)"
    try:
        return "ok: " + mask_identifiers(
            normalise(
                f.identifier_kind, parsed, default_region=fm.default_region, add_plus=fm.add_plus
            )
        )
    except InvalidIdentifier as exc:
        return f"rejected: {exc}"


def _samples(
    con: duckdb.DuckDBPyConnection,
    src: SourceTable,
    parsed: ParsedExport,
    f: ContractField,
    fm: FieldMapping,
    count: int,
) -> list[tuple[str, str]]:
    row = quote_ident(ROW_COLUMN)
    rows = con.execute(
        f"SELECT {_raw_sql(fm, src)} AS raw, p.{quote_ident(f.name)} FROM {parsed.table} AS p "
        f"JOIN {quote_ident(src.relation)} AS s ON s.{row} = p.{row} "
        f"ORDER BY p.{row} LIMIT {_SCANNED}"
    ).fetchall()
    # Values of different shapes first ("1.234,50" beside "12,50"), then different values.
    picked: dict[str, object] = {}
    shapes: set[str] = set()
    for raw, value in rows:
        shown = str(raw).strip() if raw is not None else ""
        shape = _SHAPE_RE.sub("a", _DIGIT_RE.sub("9", shown))
        if shape not in shapes and shown not in picked and len(picked) < count:
            shapes.add(shape)
            picked[shown] = value
    for raw, value in rows:
        shown = str(raw).strip() if raw is not None else ""
        if len(picked) < count and shown not in picked:
            picked[shown] = value
    if f.type is FieldType.TOKEN:
        return [
            (mask_identifiers(r), _identifier(f, fm, r, None if v is None else str(v)))
            for r, v in picked.items()
        ]
    return [(mask_identifiers(r), _shown(v)) for r, v in picked.items()]


def check_export(
    source: Path,
    mapping: Mapping,
    *,
    registry: ContractRegistry | None = None,
    samples: int = 3,
    progress: ProgressHook | None = None,
    limits: ConnectorLimits | None = None,
) -> CheckReport:
    """Read and check ``source`` with ``mapping`` (see the module docstring); write nothing.

    ``limits``: DuckDB's memory, threads and temporary folder, and the input ceilings.
    """
    limits = limits or ConnectorLimits()
    report = progress or (lambda _stage: None)
    registry = registry if registry is not None else ContractRegistry.load()
    contract = registry.get(mapping.dataset, mapping.contract_version)
    source = source.resolve()
    folder = source if source.is_dir() else source.parent
    with limits.work_folder() as temp:
        con = open_duckdb([folder], temp_dir=Path(temp), search_path=folder, limits=limits)
        try:
            src, parsed = read_export(con, source, contract, mapping, report, limits)
            with start_tokens(
                con, contract, mapping, parsed, None, report, batch_rows=limits.batch_rows
            ) as job:
                report(f"checking {parsed.rows:,} rows")
                problems = collect_problems(con, contract, parsed, src.bad_lines, job.tables)
            by_field = {
                str(name): (int(n), str(reason), value)
                for name, n, reason, value in con.execute(
                    f"SELECT field, count(DISTINCT __rank), first(reason ORDER BY __order), "
                    f"first(value ORDER BY __order) FROM {problems.table} "
                    "WHERE field IS NOT NULL GROUP BY field"
                ).fetchall()
            }
            fields = []
            for f in contract.extract_fields:
                fm = mapping.fields.get(f.name)
                if fm is None:
                    fields.append(FieldPreview(f.name, "(not mapped: empty)"))
                    continue
                if fm.constant is not None:
                    fields.append(FieldPreview(f.name, f"constant {fm.constant}"))
                    continue
                n, reason, value = by_field.get(f.name, (0, None, None))
                fields.append(
                    FieldPreview(
                        f.name,
                        ", ".join(fm.source_columns()),
                        _samples(con, src, parsed, f, fm, samples),
                        n,
                        reason,
                        (mask_identifiers(str(value)) if value is not None else "", str(reason))
                        if n
                        else None,
                    )
                )
            result = CheckReport(
                dataset=contract.dataset,
                contract_version=contract.version,
                source=source,
                rows_read=parsed.rows + len(src.bad_lines),
                rows_rejected=problems.rejected_rows,
                max_reject_ratio=mapping.max_reject_ratio,
                notes=[*src.notes, *parsed.notes],
                fields=fields,
                warnings=magnitude_warnings(con, contract, mapping, parsed),
                dropped=left_behind(con, contract, mapping, src),
                reasons=reasons(con, problems),
                errors=first_rejects(con, problems, src),
            )
        except duckdb.OutOfMemoryException as exc:
            raise limits.out_of_memory(Path(temp).parent) from exc
        finally:
            con.close()
    return result
