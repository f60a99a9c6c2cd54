"""Alembic environment: always run on the connection ``hub.storage.db.upgrade`` hands over."""

from alembic import context

from hub.storage.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only hub.storage.db.upgrade drives migrations
    raise RuntimeError("run migrations through hub.storage.db.upgrade (tahub admin migrate)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
