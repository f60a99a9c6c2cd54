"""The migrations and the tables in hub.storage.db never drift (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.storage.db import make_engine, metadata, upgrade


def _drift(url: str, target: sa.MetaData) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, target))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine = make_engine(url)
    upgrade(engine)
    upgrade(engine)  # idempotent
    engine.dispose()
    return url


def test_upgrade_builds_exactly_the_tables_the_code_queries(migrated_url: str) -> None:
    assert _drift(migrated_url, metadata) == []


def test_the_comparison_would_notice_a_drift(migrated_url: str) -> None:
    drifted = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["ledger_entries"].append_column(sa.Column("amount", sa.Float))
    drifted.tables["releases"].indexes.clear()
    kinds = {d[0] if isinstance(d, tuple) else d[0][0] for d in _drift(migrated_url, drifted)}
    assert {"add_column", "remove_index"} <= kinds
