"""How ``tahub-connect`` prints what it found: validation reports, ``check``, left-behind columns.

Every value shown has been masked upstream (:mod:`connectors.partner.masking`); rich markup
in values is escaped, so that a cell cannot restyle the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from connectors.partner.preview import CheckReport
from connectors.partner.report import DroppedColumn, PreparedExtract, ReasonCount
from hub.errors import RowError

__all__ = ["show_check", "show_left_behind", "show_prepared", "size"]


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _notes(out: Console, notes: Sequence[str]) -> None:
    if notes:
        out.print("How the export was read:")
        for note in notes:
            out.print(Text(f"  - {note}"))


def _reasons(out: Console, reasons: Sequence[ReasonCount]) -> None:
    if not reasons:
        return
    table = Table(title="Rejected, by reason")
    table.add_column("field")
    table.add_column("reason", overflow="fold")
    table.add_column("rows", justify="right")
    for r in reasons:
        table.add_row(escape(r.field), escape(r.reason), f"{r.rows:,}")
    out.print(table)


def _first(out: Console, errors: Sequence[RowError]) -> None:
    if errors:
        out.print("First rejected rows:")
        for e in errors[:5]:
            out.print(Text(f"  - {e}"))


def show_left_behind(out: Console, dropped: Sequence[DroppedColumn]) -> None:
    """The columns no field takes, with a sample, a flag, and the mapping's reason."""
    if not dropped:
        return
    table = Table(title="Columns left behind (never leave this machine)")
    table.add_column("column")
    table.add_column("sample", overflow="fold")
    table.add_column("check", overflow="fold")
    table.add_column("ignore: reason", overflow="fold")
    for d in dropped:
        sample = ", ".join(d.sample)
        check = Text(d.hint or "", style="yellow")
        why = (
            Text(d.ignored, style="green")
            if d.ignored
            else Text("not acknowledged: map it or list it under ignore:", style="yellow")
        )
        table.add_row(escape(d.name), escape(sample), check, why)
    out.print(table)


def show_prepared(out: Console, p: PreparedExtract) -> None:
    summary = Table(
        title=f"Validation report: {p.dataset} v{p.contract_version}", show_header=False
    )
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    summary.add_row("source", str(p.source))
    summary.add_row("rows read", f"{p.rows_read:,}")
    summary.add_row("valid", f"{p.rows_valid:,}")
    summary.add_row("rejected", f"{p.rows_rejected:,} ({p.reject_ratio:.1%})")
    summary.add_row("key id", p.key_id)
    summary.add_row("extract", f"{p.path} ({size(p.size)})")
    summary.add_row("sha256", p.sha256)
    if p.rejects_path is not None:
        summary.add_row("rejects", str(p.rejects_path))
    out.print(summary)
    _notes(out, p.notes)
    _reasons(out, p.reasons)
    _first(out, p.errors)
    show_left_behind(out, p.dropped)


def show_check(out: Console, r: CheckReport) -> None:
    """``tahub-connect check``: per field, raw values beside what they became."""
    out.print(
        f"Check of {r.source.name} for {r.dataset} v{r.contract_version}: {r.rows_read:,} rows "
        f"read, {r.rows_rejected:,} would be rejected ({r.reject_ratio:.2%}; the mapping allows "
        f"{r.max_reject_ratio:.1%})"
    )
    _notes(out, r.notes)
    table = Table(title="Fields: raw values -> contract values")
    table.add_column("field", style="bold")
    table.add_column("column(s)")
    table.add_column("raw -> parsed", overflow="fold")
    table.add_column("rejects", overflow="fold")
    for f in r.fields:
        pairs = "\n".join(f"{raw!r} -> {parsed}" for raw, parsed in f.samples)
        rejects = ""
        if f.rejected:
            rejects = f"{f.rejected:,} rows: {f.reason}"
            if f.example is not None and f.example[0]:
                rejects += f" (e.g. {f.example[0]!r})"
        table.add_row(escape(f.field), escape(f.source), escape(pairs), escape(rejects))
    out.print(table)
    for w in r.warnings:
        style = "red" if w.enforced else "yellow"
        label = "STOP" if w.enforced else "warning (check_magnitude: false)"
        out.print(Text(f"{label}: implausible magnitude: {w}", style=style))
    _reasons(out, r.reasons)
    _first(out, r.errors)
    show_left_behind(out, r.dropped)
    if r.would_stop:
        out.print(Text("push would stop: no extract would be written.", style="red bold"))
    else:
        out.print(Text("push would write the extract.", style="green"))
