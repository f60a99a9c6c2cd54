"""A throwaway PostgreSQL database for one test session (the ledger's PostgreSQL tests).

The server is ``TAHUB_TEST_POSTGRES_URL`` (default: trust auth as ``postgres`` on
127.0.0.1:5432, maintenance database ``test``). If it cannot be reached the tests that need
it FAIL; they are skipped only when ``TAHUB_TEST_POSTGRES=0`` says so explicitly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from hub.actors import MemberKind
from hub.storage.db import make_engine, organisations, upgrade, utcnow

__all__ = ["ORGS", "migrated_database", "postgres_database"]

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ORGS = [f"org_{i:012d}" for i in range(8)]


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a fresh database, yield its URL, drop it (even if connections linger)."""
    if os.environ.get("TAHUB_TEST_POSTGRES") == "0":
        pytest.skip("PostgreSQL tests disabled by TAHUB_TEST_POSTGRES=0")
    server = sa.make_url(os.environ.get("TAHUB_TEST_POSTGRES_URL", DEFAULT_URL))
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"tahub_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {server.render_as_string()} is unreachable ({exc.orig}); "
                    "start it or set TAHUB_TEST_POSTGRES=0 to skip these tests")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def migrated_database(url: str) -> None:
    """Run the migrations on ``url`` and add the member organisations of :data:`ORGS`."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(organisations), [
                {"id": org, "name": f"Member {i}", "kind": MemberKind.BANK,
                 "created_at": utcnow()}
                for i, org in enumerate(ORGS)
            ])
    finally:
        engine.dispose()
