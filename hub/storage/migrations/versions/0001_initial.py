"""Initial schema: organisations, clients, uploads, extracts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from hub.storage.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_clients_org_id", "clients", ["org_id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("dataset", sa.String(63), nullable=False),
        sa.Column("contract_version", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("extract_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_uploads_org_id", "uploads", ["org_id"])
    op.create_index("ix_uploads_org_sha", "uploads", ["org_id", "sha256"])
    op.create_table(
        "extracts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("dataset", sa.String(63), nullable=False),
        sa.Column("contract_version", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("object_key", sa.String(512), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
        sa.Column("report", sa.JSON, nullable=False),
    )
    op.create_index("ix_extracts_org_id", "extracts", ["org_id"])
    op.create_index("ix_extracts_dataset_status", "extracts", ["dataset", "status"])
    op.create_index(
        "uq_extracts_visible_content",
        "extracts",
        ["org_id", "dataset", "sha256"],
        unique=True,
        sqlite_where=sa.text("status = 'visible'"),
        postgresql_where=sa.text("status = 'visible'"),
    )


def downgrade() -> None:
    op.drop_table("extracts")
    op.drop_table("uploads")
    op.drop_table("clients")
    op.drop_table("organisations")
