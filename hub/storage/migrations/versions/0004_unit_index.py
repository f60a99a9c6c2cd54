"""The unit index in the metadata store (used when it is PostgreSQL): datasets and tokens.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_datasets",
        sa.Column("dataset", sa.String(63), primary_key=True),
        sa.Column("last_unit", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "unit_tokens",
        sa.Column("dataset", sa.String(63), primary_key=True),
        sa.Column("token", sa.Text, primary_key=True),
        sa.Column("unit", sa.BigInteger, nullable=False),
        sa.Column("rows_seen", sa.BigInteger, nullable=False),
        postgresql_with={"fillfactor": 50},
    )
    op.create_index("uq_unit_tokens_dataset_unit", "unit_tokens", ["dataset", "unit"],
                    unique=True)


def downgrade() -> None:
    op.drop_table("unit_tokens")
    op.drop_table("unit_datasets")
