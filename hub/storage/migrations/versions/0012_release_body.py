"""Releases stored zstd-compressed: ``releases.result`` (JSON) becomes ``releases.body``
(binary, the form hub.query.answer reads and every answer extends), each stored release
converted from its JSON text as stored, never decoded.

Revision ID: 0012
Revises: 0011
"""

import json
from typing import Any

import sqlalchemy as sa
import zstandard
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_releases = sa.table("releases", sa.column("id", sa.String), sa.column("result", sa.JSON),
                     sa.column("body", sa.LargeBinary))


def _body(text: str) -> bytes:
    """The stored form of hub.query.answer at this revision: the JSON object less its
    closing brace, as a zstd frame (level 3) whose blocks are flushed and none is last."""
    frame = zstandard.ZstdCompressor(level=3).compressobj()
    return (frame.compress(text.strip()[:-1].encode())
            + frame.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))


def _result(body: bytes) -> Any:
    text: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return json.loads(text + b"}")  # the JSON column writes it as compact as it was


def _ids() -> list[str]:
    return list(op.get_bind().execute(sa.select(_releases.c.id)).scalars())


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary, nullable=True))
    conn, rel = op.get_bind(), _releases
    for release_id in _ids():  # one release in memory at a time: each may be megabytes
        text = conn.execute(sa.select(sa.cast(rel.c.result, sa.Text))  # not decoded
                            .where(rel.c.id == release_id)).scalar_one()
        conn.execute(sa.update(rel).where(rel.c.id == release_id)
                     .values(body=_body(text)))
    with op.batch_alter_table("releases") as batch:
        batch.alter_column("body", existing_type=sa.LargeBinary, nullable=False)
        batch.drop_column("result")


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("result", sa.JSON, nullable=True))
    conn, rel = op.get_bind(), _releases
    for release_id in _ids():
        body = conn.execute(sa.select(rel.c.body).where(rel.c.id == release_id)).scalar_one()
        conn.execute(sa.update(rel).where(rel.c.id == release_id)
                     .values(result=_result(body)))
    with op.batch_alter_table("releases") as batch:
        batch.alter_column("result", existing_type=sa.JSON, nullable=False)
        batch.drop_column("body")
