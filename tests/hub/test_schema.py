"""The migrations and the tables in hub.storage.db never drift, and the migrations that convert
stored rows keep them (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import zstandard
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.query.answer import Answer, stored_result
from hub.storage.db import downgrade, make_engine, metadata, releases, upgrade, utcnow
from tests.hub.postgres import postgres_database


def _drift(url: str, target: sa.MetaData, table: str | None = None) -> list[Any]:
    """What differs between the database at ``url`` and ``target`` (only ``table``'s, if
    named)."""

    def named(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        return table is None or (name if kind == "table" else obj.table.name) == table

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                             "include_object": named})
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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with postgres_database() as url:
        yield url


def test_0012_compresses_every_stored_release_and_takes_it_back(empty_url: str) -> None:
    # a database at 0011 with a published release (a row referring to it, which rebuilding
    # the table on SQLite must keep), then up to the stored form and down again
    old = {"query_id": "led_1", "cells": [{"origin": "NG", "value": 1.5}] * 300,
           "note": "é"}
    text = json.dumps(old, separators=(",", ":"))
    engine = make_engine(empty_url)
    try:
        upgrade(engine, "0011")
        with engine.begin() as conn:
            for sql in (
                "INSERT INTO organisations (id, name, kind, created_at) "
                "VALUES ('org_1', 'Org', 'bank', :at)",
                "INSERT INTO ledger_entries (id, dataset, org_id, measure, amount_num, "
                "amount_den, delta_num, delta_den, query_key, status, created_at, shape) "
                "VALUES ('led_1', 'ds', 'org_1', 'zcdp', 1, 4, 0, 1, :key, 'released', :at, "
                "'{}')",
                "INSERT INTO releases (id, entry_id, dataset, org_id, query_key, created_at, "
                "result) VALUES ('rel_1', 'led_1', 'ds', 'org_1', :key, :at, :text)",
                "INSERT INTO publications (id, release_id, org_id, dataset, title, "
                "audience_all, summary, status, published_by, published_at, updated_at) "
                "VALUES ('pub_1', 'rel_1', 'org_1', 'ds', 'T', true, '{}', 'active', 'c', "
                ":at, :at)",
            ):
                conn.execute(sa.text(sql), {"at": utcnow(), "key": "0" * 64, "text": text})
        upgrade(engine, "0012")
        with engine.connect() as conn:
            (body,) = conn.execute(sa.select(releases.c.body)).one()
        assert body.startswith(zstandard.FRAME_HEADER) and len(body) < len(text) / 10
        assert stored_result(body) == old  # the text as it was stored, compressed
        assert Answer(body, {"reused": True}).json() == text[:-1].encode() + b',"reused":true}'
        assert _drift(empty_url, metadata, "releases") == []

        downgrade(engine, "0011")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT release_id FROM publications")).all() == [
                ("rel_1",)]
            (back,) = conn.execute(sa.text("SELECT CAST(result AS TEXT) FROM releases")).one()
        assert back == text
        upgrade(engine, "0012")
    finally:
        engine.dispose()
