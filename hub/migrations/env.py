"""Alembic environment: always run on the connection ``hub.db.upgrade`` hands over."""

from alembic import context

from hub.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only hub.db.upgrade drives migrations
    raise RuntimeError("run migrations through hub.db.upgrade (tahub admin migrate)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
