"""Sharing-policy versions and their approvals (four-eyes review, hub.governance.policychanges).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from hub.storage.db import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("dataset", sa.String(63), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("base_id", sa.String(64), nullable=True),
        sa.Column("restores", sa.Integer, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("proposed_by", sa.String(128), nullable=False),
        sa.Column("proposed_org", sa.String(64), nullable=True),
        sa.Column("proposed_at", UTCDateTime(), nullable=False),
        sa.Column("effective_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("activated_at", UTCDateTime(), nullable=True),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
    )
    op.create_index("uq_policy_versions_dataset_number", "policy_versions",
                    ["dataset", "number"], unique=True)
    op.create_index("ix_policy_versions_status", "policy_versions", ["status"])
    op.create_index("uq_policy_versions_active", "policy_versions", ["dataset"], unique=True,
                    sqlite_where=sa.text("status = 'active'"),
                    postgresql_where=sa.text("status = 'active'"))
    op.create_table(
        "policy_approvals",
        sa.Column("version_id", sa.String(64), sa.ForeignKey("policy_versions.id"),
                  primary_key=True),
        sa.Column("actor", sa.String(128), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("policy_approvals")
    op.drop_table("policy_versions")
