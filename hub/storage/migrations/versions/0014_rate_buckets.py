"""Token buckets shared by every hub process on the store (the crowd-report limit per
address, hub.storage.ratebuckets): one row per limiter and keyed hash, no address.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("limiter", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("counted_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_rate_buckets_limiter_counted_at", "rate_buckets",
                    ["limiter", "counted_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_buckets_limiter_counted_at", table_name="rate_buckets")
    op.drop_table("rate_buckets")
