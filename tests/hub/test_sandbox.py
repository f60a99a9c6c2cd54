"""DuckDB as a sandbox (hub.storage.sandbox): crafted names, values and SQL reach no other file.

Two layers are tried. First, what reaches DuckDB from a request is only contract field
names (quoted) and bound values: crafted filter values and group keys are data, and match
nothing. Second, should SQL text ever be crafted (a bug in the first layer, simulated here by
replacing the compiled query), the connection itself refuses every file it was not given,
every write outside its folders, and every attempt to lift its limits.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from hub.contracts.model import Contract, ContractRegistry, FieldType
from hub.errors import Unavailable
from hub.query import engine as engine_module
from hub.query.plan import DimensionPlan
from hub.query.sql import Compiled, Part
from hub.storage.sandbox import DuckLimits, sandboxed_duckdb
from tests.hub.conftest import ORG_A, ORG_B
from tests.hub.extract_files import token, valid_rows
from tests.hub.pooled import Pool, plan


def _escapes(outside: Path, secret: Path) -> dict[str, str]:
    """SQL that would read ``secret``, or write or attach under ``outside``, or lift limits."""
    return {
        "read a file": f"SELECT * FROM read_text('{secret}')",
        "read csv": f"SELECT * FROM read_csv('{secret}', header = false)",
        "read via ..": f"SELECT * FROM read_text('{outside}/inside/../{secret.name}')",
        "glob a folder": f"SELECT * FROM glob('{outside}/*')",
        "proc": "SELECT * FROM read_text('/proc/self/environ')",
        "etc": "SELECT * FROM read_text('/etc/passwd')",
        "write": f"COPY (SELECT 42) TO '{outside}/written.csv'",
        "attach": f"ATTACH '{outside}/other.duckdb' AS other",
        "lift access": "SET enable_external_access = true",
        "reset access": "RESET enable_external_access",
        "widen folders": "SET allowed_directories = ['/']",
        "widen paths": f"SET allowed_paths = ['{secret}']",
        "more memory": "SET memory_limit = '64GB'",
        "more threads": "SET threads = 64",
        "move spill": f"SET temp_directory = '{outside}'",
        "unlock": "SET lock_configuration = false",
        "install": "INSTALL httpfs",
        "load": "LOAD httpfs",
        "secret": "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "network": "SELECT * FROM read_csv('https://example.org/x.csv')",
    }


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    (folder / "inside").mkdir(parents=True)
    (folder / "secret.txt").write_text("the hub's signing key\n")
    return folder


def test_a_sandboxed_connection_reaches_only_what_it_was_given(
    tmp_path: Path, outside: Path
) -> None:
    given = tmp_path / "given.csv"
    given.write_text("n\n7\n")
    work = tmp_path / "work"
    work.mkdir()
    spill_root = tmp_path / "spill"
    with sandboxed_duckdb(DuckLimits(1, "256MB", spill_root), read=[given],
                          folders=[work]) as con:
        assert con.execute(f"SELECT n FROM read_csv('{given}')").fetchall() == [(7,)]
        con.execute(f"COPY (SELECT 1 AS x) TO '{work}/out.parquet'")
        assert con.execute(f"SELECT x FROM '{work}/out.parquet'").fetchall() == [(1,)]
        (spill,) = spill_root.iterdir()  # its own temporary folder
        for name, sql in _escapes(outside, outside / "secret.txt").items():
            with pytest.raises(duckdb.Error):
                con.execute(sql).fetchall()
                pytest.fail(f"{name}: not refused")
        settings = dict(con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'lock_configuration', 'threads', 'memory_limit')"
        ).fetchall())
        assert settings["enable_external_access"] == "false"
        assert settings["lock_configuration"] == "true"
        assert settings["threads"] == "1"
        assert settings["memory_limit"].startswith(("244", "256"))
    assert sorted(p.name for p in outside.iterdir()) == ["inside", "secret.txt"]
    assert not spill.exists()


@pytest.fixture
def pool(tmp_path: Path, migrated_db: Path, registry: ContractRegistry) -> Iterator[Pool]:
    p = Pool.create(tmp_path, migrated_db, registry)
    yield p
    p.close()


def _committed(pool: Pool, registry: ContractRegistry) -> Contract:
    alerts = registry.get("bank_alerts", 1)
    for org, subjects in ((ORG_A, "abc"), (ORG_B, "cde")):
        rows = valid_rows(alerts, len(subjects))
        for row, subject in zip(rows, subjects, strict=True):
            row.update(subject=token(subject), typology="unknown")
        pool.commit(org, alerts, rows)
    return alerts


CRAFTED = [
    "unknown'); COPY (SELECT 1) TO '{canary}' (FORMAT csv); --",
    "unknown\" FROM read_text('{secret}') --",
    "' UNION SELECT content FROM read_text('{secret}') --",
    "{secret}",
]


@pytest.mark.parametrize("value", CRAFTED)
def test_crafted_filter_values_and_group_keys_are_data(
    pool: Pool, registry: ContractRegistry, outside: Path, value: str
) -> None:
    alerts = _committed(pool, registry)
    crafted = value.format(canary=outside / "canary.csv", secret=outside / "secret.txt")
    filtered = plan(alerts, [("typology", ("unknown",))], {"typology": ("unknown", crafted)})
    assert pool.engine.aggregate(filtered, [Part("count")]) == [[6]]
    grouped = dataclasses.replace(filtered, filters=(), dimensions=(
        DimensionPlan("typology", FieldType.CATEGORY, (crafted, "unknown")),))
    assert pool.engine.aggregate(grouped, [Part("count")]) == [[0, 6]]
    assert sorted(p.name for p in outside.iterdir()) == ["inside", "secret.txt"]


@pytest.mark.parametrize("attempt", ["read a file", "read via ..", "glob a folder", "write",
                                     "attach", "lift access", "more memory", "etc"])
def test_crafted_sql_that_got_past_quoting_is_refused_by_the_engine_sandbox(
    pool: Pool, registry: ContractRegistry, outside: Path, monkeypatch: pytest.MonkeyPatch,
    attempt: str,
) -> None:
    alerts = _committed(pool, registry)
    sql = _escapes(outside, outside / "secret.txt")[attempt]

    def injected(*_args: object, **_kwargs: object) -> Compiled:
        return Compiled(sql, [])

    monkeypatch.setattr(engine_module, "compile_plan", injected)
    with pytest.raises(Unavailable, match="could not run"):
        pool.engine.aggregate(plan(alerts, [("typology", ("unknown",))]), [Part("count")])
    assert sorted(p.name for p in outside.iterdir()) == ["inside", "secret.txt"]


@pytest.mark.parametrize("leave", [
    "CREATE TABLE kept AS SELECT 'planted' AS typology",
    "CREATE VIEW kept AS SELECT 'planted' AS typology",
    "CREATE MACRO kept() AS 'planted'",
    "CREATE TEMP TABLE kept AS SELECT 'planted' AS typology",
    "CREATE TEMP MACRO kept() AS 'planted'",
    "SELECT 1; COMMIT; CREATE TABLE kept AS SELECT 'planted' AS typology",
])
def test_a_query_leaves_nothing_in_the_database_the_next_query_shares(
    pool: Pool, registry: ContractRegistry, monkeypatch: pytest.MonkeyPatch, leave: str,
) -> None:
    """Queries of the same files share one open DuckDB database (a cursor each): what one
    query's SQL might create, had it been crafted, is refused or dies with its cursor."""
    alerts = _committed(pool, registry)
    question = plan(alerts, [("typology", ("unknown",))])
    assert pool.engine.aggregate(question, [Part("count")]) == [[6]]
    with monkeypatch.context() as m:
        m.setattr(engine_module, "compile_plan", lambda *_a, **_k: Compiled(leave, []))
        with contextlib.suppress(Unavailable):  # refused: a read-only database
            pool.engine.aggregate(question, [Part("count")])
    for probe in ("SELECT count(*) FROM kept", "SELECT kept()"):
        with monkeypatch.context() as m:
            m.setattr(engine_module, "compile_plan", lambda *_a, p=probe, **_k: Compiled(p, []))
            with pytest.raises(Unavailable, match="could not run"):
                pool.engine.aggregate(question, [Part("count")])
    assert pool.engine.aggregate(question, [Part("count")]) == [[6]]
    assert len(pool.engine._sandboxes._open) == 1  # all of it on one shared database


def test_shared_databases_follow_the_committed_files_and_close_when_done(
    pool: Pool, registry: ContractRegistry,
) -> None:
    alerts = _committed(pool, registry)
    question = plan(alerts, [("typology", ("unknown",))])
    boxes = pool.engine._sandboxes
    assert pool.engine.aggregate(question, [Part("count")]) == [[6]]
    with boxes.cursor([]) as held:  # a query still running on a database about to retire
        for n in range(1, boxes.KEEP + 1):  # each commit: a new set of files to read
            rows = valid_rows(alerts, 1)
            rows[0].update(subject=token(f"new{n}"), typology="unknown")
            pool.commit(ORG_A, alerts, rows)
            assert pool.engine.aggregate(question, [Part("count")]) == [[6 + n]]
        assert len(boxes._open) == boxes.KEEP
        assert held.execute("SELECT 42").fetchall() == [(42,)]  # still open while in use
    assert len(boxes._open) == boxes.KEEP
    pool.engine.close()
    assert not boxes._open
    assert pool.engine.aggregate(question, [Part("count")]) == [[6 + boxes.KEEP]]
