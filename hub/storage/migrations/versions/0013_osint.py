"""Open-source and public collection (hub.osint): sources, fetches, incidents, items,
reviewers' decisions and crowd reports' receipts.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from hub.storage.db import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "osint_sources",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("location", sa.String(2000), nullable=False),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("every_minutes", sa.Integer, nullable=False),
        sa.Column("trust", sa.String(8), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("etag", sa.String(500), nullable=True),
        sa.Column("last_modified", sa.String(100), nullable=True),
        sa.Column("next_fetch_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("hosts", sa.JSON, nullable=True),
        sa.Column("seen", sa.JSON, nullable=True),
    )
    op.create_table(
        "osint_fetches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source_id", sa.String(64), sa.ForeignKey("osint_sources.id"),
                  nullable=False, index=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("found", sa.Integer, nullable=False),
        sa.Column("added", sa.Integer, nullable=False),
        sa.Column("duplicates", sa.Integer, nullable=False),
        sa.Column("skipped", sa.JSON, nullable=False),
        sa.Column("error", sa.String(1000), nullable=True),
    )
    op.create_table(
        "osint_incidents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("merged_into", sa.String(64), sa.ForeignKey("osint_incidents.id"),
                  nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("coded", sa.JSON, nullable=True),
        sa.Column("reviewed_by", sa.String(64), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "osint_items",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(64), sa.ForeignKey("osint_sources.id"),
                  nullable=True),
        sa.Column("fetch_id", sa.String(64), sa.ForeignKey("osint_fetches.id"), nullable=True),
        sa.Column("incident_id", sa.String(64), sa.ForeignKey("osint_incidents.id"),
                  nullable=False, index=True),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("title", sa.String(1000), nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("sealed", sa.LargeBinary, nullable=True),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("collected_at", UTCDateTime(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
        sa.Column("minhash", sa.LargeBinary, nullable=True),
        sa.Column("tagging", sa.JSON, nullable=True),
        sa.Column("purge_after", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "osint_decisions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("incident_id", sa.String(64), sa.ForeignKey("osint_incidents.id"),
                  nullable=False, index=True),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("suggested", sa.JSON, nullable=False),
        sa.Column("coded", sa.JSON, nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
    )
    op.create_table(
        "osint_receipts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("challenge", sa.String(64), nullable=False, unique=True),
        sa.Column("item_id", sa.String(64), sa.ForeignKey("osint_items.id"), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("osint_receipts", "osint_decisions", "osint_items", "osint_incidents",
                  "osint_fetches", "osint_sources"):
        op.drop_table(table)
