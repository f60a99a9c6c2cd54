"""Per-member, per-day totals of the ledger, so that checking a budget does not read every
entry; filled from the existing entries.

Revision ID: 0011
Revises: 0010
"""

from collections import defaultdict
from datetime import UTC, datetime
from fractions import Fraction

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _day(value: object) -> str:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.strftime("%Y-%m-%d")


def upgrade() -> None:
    totals = op.create_table(
        "ledger_totals",
        sa.Column("dataset", sa.String(63), primary_key=True),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organisations.id"),
                  primary_key=True),
        sa.Column("measure", sa.String(8), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("amount", sa.String(200), nullable=False),
        sa.Column("delta", sa.String(200), nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
    )
    entries = sa.table("ledger_entries", *(sa.column(c) for c in (
        "dataset", "org_id", "measure", "amount_num", "amount_den", "delta_num", "delta_den",
        "created_at")))
    amounts: dict[tuple[str, str, str, str], Fraction] = defaultdict(Fraction)
    deltas: dict[tuple[str, str, str, str], Fraction] = defaultdict(Fraction)
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for r in op.get_bind().execute(sa.select(entries)):
        key = (r.dataset, r.org_id, r.measure, _day(r.created_at))
        amounts[key] += Fraction(r.amount_num, r.amount_den)
        deltas[key] += Fraction(r.delta_num, r.delta_den)
        counts[key] += 1
    if counts:
        op.bulk_insert(totals, [
            {"dataset": k[0], "org_id": k[1], "measure": k[2], "day": k[3],
             "amount": str(amounts[k]), "delta": str(deltas[k]), "entries": n}
            for k, n in counts.items()])


def downgrade() -> None:
    op.drop_table("ledger_totals")
