"""Per-member overrides of the extract limits (rows, decoded bytes, decoded bytes per
uploaded byte); NULL: the hub's setting applies.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(sa.Column("max_extract_rows", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("max_decoded_bytes", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("max_decoded_ratio", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("max_decoded_ratio")
        batch.drop_column("max_decoded_bytes")
        batch.drop_column("max_extract_rows")
