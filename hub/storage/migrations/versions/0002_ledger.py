"""The privacy-budget ledger: ledger entries, stored releases, per-dataset budget locks.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from hub.storage.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("dataset", sa.String(63), nullable=False),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("measure", sa.String(8), nullable=False),
        sa.Column("amount_num", sa.BigInteger, nullable=False),
        sa.Column("amount_den", sa.BigInteger, nullable=False),
        sa.Column("query_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.Column("shape", sa.JSON, nullable=False),
    )
    op.create_index("ix_ledger_entries_dataset_created", "ledger_entries",
                    ["dataset", "created_at"])
    op.create_index("ix_ledger_entries_org_dataset", "ledger_entries", ["org_id", "dataset"])
    op.create_table(
        "releases",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("entry_id", sa.String(64), sa.ForeignKey("ledger_entries.id"),
                  nullable=False, unique=True),
        sa.Column("dataset", sa.String(63), nullable=False),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("query_key", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("uq_releases_org_dataset_key", "releases",
                    ["org_id", "dataset", "query_key"], unique=True)
    op.create_table(
        "budget_locks",
        sa.Column("dataset", sa.String(63), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("budget_locks")
    op.drop_table("releases")
    op.drop_table("ledger_entries")
