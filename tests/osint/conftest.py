"""Fixtures of the open-source collection's tests: one tagger per test session (loading its
vocabularies takes seconds) and a migrated metadata store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from hub.osint.tagging import Tagger
from hub.storage.db import make_engine, upgrade


@pytest.fixture(scope="session")
def tagger() -> Tagger:
    return Tagger()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite metadata store of the test's own."""
    engine = make_engine(f"sqlite:///{tmp_path / 'tahub.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()
