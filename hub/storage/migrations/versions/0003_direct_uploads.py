"""Direct uploads: the partner sends the bytes straight to the object store (presigned
multipart), the hub records the multipart upload and its part size.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("transfer", sa.String(16), nullable=False,
                                   server_default="chunks"))
        batch.add_column(sa.Column("multipart_id", sa.String(1024), nullable=True))
        batch.add_column(sa.Column("part_bytes", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("part_bytes")
        batch.drop_column("multipart_id")
        batch.drop_column("transfer")
