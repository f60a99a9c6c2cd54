"""``tahub admin reports-key`` and ``tahub admin purge-reports``: the crowd reports' key and
retention (hub.osint.reports, docs/osint.md#crowd-reports)."""

from __future__ import annotations

import typer

from connectors.common.cli import user_errors
from hub.cli import context

__all__ = ["purge_reports", "reports_key"]


@user_errors
def reports_key() -> None:
    """Print a new random key for TAHUB_REPORTS_KEYS (to rotate: put it first, keep the old
    keys after it until their reports are purged)."""
    from hub.osint.sealing import new_key

    typer.echo(new_key())


@user_errors
def purge_reports() -> None:
    """Delete the texts of crowd reports reviewed more than TAHUB_REPORTS_RETENTION_DAYS
    ago (the hub also does it every few minutes); prints how many, never a text."""
    from hub.governance.audit import AuditLog
    from hub.osint.reports import Reports
    from hub.storage.db import make_engine

    settings = context.settings()
    engine = make_engine(settings.database_url)
    try:
        context.migrate(engine)
        purged = Reports(engine, AuditLog(engine), keys=settings.reports_key_list(),
                         bits=settings.reports_proof_bits,
                         max_chars=settings.reports_max_chars,
                         retention_days=settings.reports_retention_days,
                         ).purge(actor=context.cli_actor())
    finally:
        engine.dispose()
    typer.echo(f"crowd report texts deleted: {purged.texts} (reviewed more than "
               f"{settings.reports_retention_days} days ago, or past their purge date); "
               f"unused receipts removed: {purged.receipts}")
