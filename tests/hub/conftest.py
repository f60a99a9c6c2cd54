"""Fixtures for hub tests: a real SQLite metadata store, a real folder store, real settings."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.actors import Actor, MemberKind, Role
from hub.contracts.model import ContractRegistry
from hub.ingest.service import IngestService
from hub.settings import Settings
from hub.storage.db import make_engine, organisations, upgrade, utcnow
from hub.storage.objects import LocalFolderStore, open_store

ORG_A, ORG_B = "org_aaaaaaaaaaaa", "org_bbbbbbbbbbbb"


@pytest.fixture(scope="session")
def registry() -> ContractRegistry:
    return ContractRegistry.load()


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file with two member organisations; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "tahub.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(organisations), [
            {"id": ORG_A, "name": "Bank A", "kind": MemberKind.BANK, "created_at": utcnow()},
            {"id": ORG_B, "name": "NGO B", "kind": MemberKind.NGO, "created_at": utcnow()},
        ])
    engine.dispose()
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", chunk_bytes=64 * 1024,
                    max_extract_bytes=2 * 1024 * 1024, upload_ttl_hours=2)


@pytest.fixture
def engine(settings: Settings, migrated_db: Path) -> Iterator[sa.Engine]:
    db_file = settings.data_dir / "tahub.db"
    db_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_db, db_file)
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(settings: Settings) -> LocalFolderStore:
    opened = open_store(settings.storage, settings)
    assert isinstance(opened, LocalFolderStore)
    return opened


@pytest.fixture
def service(
    engine: sa.Engine, store: LocalFolderStore, registry: ContractRegistry, settings: Settings
) -> IngestService:
    return IngestService(engine=engine, store=store, registry=registry, settings=settings)


def _actor(org: str, name: str, *roles: Role) -> Actor:
    return Actor(client_id=f"cli_{org[-4:]}", org=org, org_name=name, roles=frozenset(roles))


@pytest.fixture
def partner_a() -> Actor:
    return _actor(ORG_A, "Bank A", Role.PARTNER)


@pytest.fixture
def partner_b() -> Actor:
    return _actor(ORG_B, "NGO B", Role.PARTNER)


@pytest.fixture
def analyst_a() -> Actor:
    return _actor(ORG_A, "Bank A", Role.ANALYST)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated metadata store: a fresh SQLite file, then the session's PostgreSQL."""
    if request.param == "postgresql":
        pg: str = request.getfixturevalue("postgres_url")
        return pg
    from tests.hub.postgres import migrated_database

    sqlite = f"sqlite:///{tmp_path / 'tahub.db'}"
    migrated_database(sqlite)
    return sqlite


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway, migrated PostgreSQL database for the session (see tests/hub/postgres.py:
    fails if the server is unreachable, unless TAHUB_TEST_POSTGRES=0)."""
    from tests.hub.postgres import migrated_database, postgres_database

    with postgres_database() as url:
        migrated_database(url)
        yield url
