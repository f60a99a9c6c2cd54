"""Approximate DP in the ledger (a delta per entry) and a per-dataset salt for the keyed row
priorities of contribution bounding.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("delta_num", sa.BigInteger, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("delta_den", sa.BigInteger, nullable=False,
                                   server_default="1"))
    with op.batch_alter_table("unit_datasets") as batch:
        batch.add_column(sa.Column("salt", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("unit_datasets") as batch:
        batch.drop_column("salt")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("delta_den")
        batch.drop_column("delta_num")
