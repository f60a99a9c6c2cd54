"""Published releases: a release shared with all members or named ones, and its audience.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from hub.storage.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publications",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("release_id", sa.String(64), sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("dataset", sa.String(63), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("audience_all", sa.Boolean, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("published_by", sa.String(64), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_publications_status", "publications", ["status", "audience_all"])
    op.create_index("uq_publications_active_release", "publications", ["release_id"],
                    unique=True, sqlite_where=sa.text("status = 'active'"),
                    postgresql_where=sa.text("status = 'active'"))
    op.create_table(
        "publication_audience",
        sa.Column("publication_id", sa.String(64), sa.ForeignKey("publications.id"),
                  primary_key=True),
        sa.Column("org_id", sa.String(64), sa.ForeignKey("organisations.id"),
                  primary_key=True),
    )
    op.create_index("ix_publication_audience_org", "publication_audience", ["org_id"])


def downgrade() -> None:
    op.drop_table("publication_audience")
    op.drop_table("publications")
