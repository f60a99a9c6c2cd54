"""The audit chain: concurrent appends never fork, every tampering is found by `verify`.

Real backends only: a SQLite file and a throwaway PostgreSQL database; real threads and
two spawned processes released together by a barrier. Tampering is done with SQL on the
stored tables, and checked through the real `tahub audit verify` command (exit code and
message) as well as :meth:`AuditLog.verify`.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.cli.main import app
from hub.errors import InvalidInput
from hub.governance.audit import GENESIS, Action, AuditEvent, AuditLog, clean_details, entry_hash
from hub.governance.auditread import AuditFilter, render
from hub.storage.db import audit_anchor, audit_entries, make_engine, upgrade
from tests.hub import audit_workers

SPAWN = multiprocessing.get_context("spawn")
runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A hub data folder whose SQLite metadata store holds a 10-entry audit chain."""
    folder = tmp_path / "data"
    engine = make_engine(f"sqlite:///{folder / 'tahub.db'}")
    upgrade(engine)
    log = AuditLog(engine)
    for i in range(10):
        log.append(AuditEvent(Action.QUERY_CHARGED, actor=f"tahub_{i:016x}", org="org_a",
                              object_type="query", object_id=f"led_{i}", dataset="bank_alerts",
                              details={"cost": {"amount": "1/10"}, "n": i}))
    engine.dispose()
    return folder


@pytest.fixture
def db(data_dir: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{data_dir / 'tahub.db'}")
    yield engine
    engine.dispose()


def _verify_cli(data_dir: Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["audit", "verify"],
                           env={"TAHUB_DATA_DIR": str(data_dir), "TAHUB_LOG_LEVEL": "WARNING"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


# -- the chain ------------------------------------------------------------------------------
def test_an_empty_log_verifies_and_entries_chain_from_genesis(url: str) -> None:
    engine = make_engine(url)
    try:
        log = AuditLog(engine)
        before = log.verify()
        assert before.ok, before.reason
        entry = log.append(AuditEvent(Action.MEMBER_REGISTERED, actor="cli:test",
                                      org="org_x", details={"kind": "bank"}))
        assert entry.seq == before.head_seq + 1
        assert entry.prev_hash == (before.head_hash if before.head_seq else GENESIS)
        assert entry.hash == entry.computed_hash()
        assert log.head() == (entry.seq, entry.hash)
        stored = next(log.scan(after=entry.seq - 1))
        assert stored == entry  # what is read back hashes the same (times, JSON round-trip)
        assert log.verify().ok
    finally:
        engine.dispose()


def test_concurrent_appends_from_threads_and_two_processes_never_fork(url: str) -> None:
    engine = make_engine(url)
    log = AuditLog(engine)
    start = log.verify()
    assert start.ok, start.reason
    per_process, per_thread, threads = 40, 20, 6
    barrier = SPAWN.Barrier(2 + threads)
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=audit_workers.append_many,
                           args=(url, f"p{i}", per_process, barrier, results))
             for i in range(2)]
    thread_seqs: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def in_thread(n: int) -> None:
        try:
            barrier.wait(timeout=60)
            for i in range(per_thread):
                entry = log.append(AuditEvent(Action.QUERY_REUSED, actor=f"thread-{n}",
                                              details={"i": i}))
                with lock:
                    thread_seqs.append(entry.seq)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=in_thread, args=(n,)) for n in range(threads)]
    try:
        for p in procs:
            p.start()
        for t in workers:
            t.start()
        out = [results.get(timeout=120) for _ in procs]
        for t in workers:
            t.join(timeout=120)
    finally:
        for p in procs:
            p.join(timeout=30)
    assert not errors, errors
    assert [p.exitcode for p in procs] == [0, 0]
    seqs = sorted(thread_seqs + [s for _, got in out for s in got])
    total = 2 * per_process + threads * per_thread
    assert len(seqs) == len(set(seqs)) == total  # every append got its own seq
    report = log.verify()
    assert report.ok, report.reason
    assert report.head_seq >= start.head_seq + total
    with engine.connect() as conn:  # one chain: every entry has a distinct predecessor
        links = conn.execute(sa.select(audit_entries.c.prev_hash)).scalars().all()
        count = conn.execute(sa.select(sa.func.count()).select_from(audit_entries)).scalar_one()
    assert len(links) == len(set(links)) == count == report.head_seq
    engine.dispose()


# -- tampering -------------------------------------------------------------------------------
def _edit_details(conn: sa.Connection) -> None:
    conn.execute(sa.update(audit_entries).where(audit_entries.c.seq == 5)
                 .values(details={"cost": {"amount": "0"}, "n": 4}))


def _edit_hash(conn: sa.Connection) -> None:
    conn.execute(sa.update(audit_entries).where(audit_entries.c.seq == 5)
                 .values(hash="f" * 64))


def _edit_and_rehash(conn: sa.Connection) -> None:
    """A careful forger recomputes the edited entry's hash: its successor's link breaks."""
    row = conn.execute(sa.select(audit_entries).where(audit_entries.c.seq == 5)).one()
    details = {"cost": {"amount": "0"}, "n": 4}
    digest = entry_hash(row.seq, row.at, row.actor, row.org_id, row.action, row.object_type,
                        row.object_id, row.dataset, details, row.prev_hash)
    conn.execute(sa.update(audit_entries).where(audit_entries.c.seq == 5)
                 .values(details=details, hash=digest))


def _delete_middle(conn: sa.Connection) -> None:
    conn.execute(sa.delete(audit_entries).where(audit_entries.c.seq == 5))


def _delete_tail(conn: sa.Connection) -> None:
    conn.execute(sa.delete(audit_entries).where(audit_entries.c.seq >= 8))


def _swap(conn: sa.Connection) -> None:
    e = audit_entries
    conn.execute(sa.update(e).where(e.c.seq == 3).values(seq=-1))
    conn.execute(sa.update(e).where(e.c.seq == 6).values(seq=3))
    conn.execute(sa.update(e).where(e.c.seq == -1).values(seq=6))


def _drop_anchor(conn: sa.Connection) -> None:
    conn.execute(sa.delete(audit_anchor))


@pytest.mark.parametrize(("tamper", "bad_seq", "words"), [
    (_edit_details, 5, "entry 5 was altered"),
    (_edit_hash, 5, "entry 5 was altered"),
    (_edit_and_rehash, 6, "entry 6 does not link to entry 5"),
    (_delete_middle, 5, "entry 5 is missing"),
    (_delete_tail, 8, "entries 8 to 10 are missing"),
    (_swap, 3, "entries were reordered"),
    (_drop_anchor, 11, "anchor row is missing"),
], ids=["edit-details", "edit-hash", "edit-and-rehash", "delete-middle", "delete-tail",
        "swap", "drop-anchor"])
def test_verify_names_the_first_bad_entry(
    data_dir: Path, db: sa.Engine, tamper: Callable[[sa.Connection], None], bad_seq: int,
    words: str,
) -> None:
    code, out, _ = _verify_cli(data_dir)
    assert code == 0 and "audit log intact: 10 entries; head seq 10" in out
    with db.begin() as conn:
        tamper(conn)
    report = AuditLog(db).verify()
    assert not report.ok and report.bad_seq == bad_seq, report
    assert report.reason is not None and words in report.reason
    code, out, err = _verify_cli(data_dir)
    assert code == 1
    assert f"audit log BROKEN at seq {bad_seq}: " in err and words in err


def test_a_truncated_tail_is_found_even_when_the_next_append_links_to_the_anchor(
    data_dir: Path, db: sa.Engine
) -> None:
    with db.begin() as conn:
        _delete_tail(conn)
    AuditLog(db).append(AuditEvent(Action.POLICY_LOADED, details={"file": "x.yaml"}))
    report = AuditLog(db).verify()
    assert not report.ok and report.bad_seq == 8 and "missing" in (report.reason or "")


# -- details and filters ---------------------------------------------------------------------
@pytest.mark.parametrize("details", [
    {"client_secret": "abc"},
    {"nested": [{"token": "abc"}]},
    {"note": "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"},
    {"result": {"rows": []}},
    {"x": float("nan")},
])
def test_details_that_could_carry_a_secret_or_a_value_are_refused(details: dict) -> None:
    with pytest.raises(ValueError):
        clean_details(details)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"action": "query.nonsense"}, "action"),
    ({"action": "nothing.*"}, "action"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2025-13-01"}, "until"),
    ({"since": "2025-06-02", "until": "2025-06-01"}, "until"),
    ({"org": "a", "member": "b"}, "member"),
    ({"actor": "x" * 200}, "actor"),
])
def test_bad_filters_name_their_field(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        AuditFilter.parse(**kwargs)
    assert caught.value.field == field


def test_filters_and_both_export_formats(data_dir: Path, db: sa.Engine) -> None:
    log = AuditLog(db)
    log.append(AuditEvent(Action.UPLOAD_STARTED, actor="tahub_" + "b" * 16, org="org_b",
                          dataset="case_records", details={"size": 10}))
    flt = AuditFilter.parse(action="upload.*")
    assert [e.seq for e in log.scan(flt.where())] == [11]
    flt = AuditFilter.parse(actor="tahub_" + "0" * 15 + "3")
    assert [e.object_id for e in log.scan(flt.where())] == ["led_3"]
    assert len(list(log.scan(AuditFilter.parse(org="org_a").where()))) == 10
    assert list(log.scan(AuditFilter.parse(since="2999-01-01").where())) == []
    lines = list(render(log.scan(), "jsonl"))
    entries = [json.loads(line) for line in "".join(lines).splitlines()]
    assert [e["seq"] for e in entries] == list(range(1, 12))
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    text = "".join(render(log.scan(), "csv")).splitlines()
    assert text[0] == "seq,at,actor,org,action,object_type,object_id,dataset,details,prev_hash,hash"
    assert len(text) == 12
    result = runner.invoke(app, ["audit", "export", "--format", "csv", "--action", "upload.*"],
                           env={"TAHUB_DATA_DIR": str(data_dir), "TAHUB_LOG_LEVEL": "WARNING"})
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2 and "upload.started" in result.stdout
    result = runner.invoke(app, ["audit", "export", "--since", "not a date"],
                           env={"TAHUB_DATA_DIR": str(data_dir), "TAHUB_LOG_LEVEL": "WARNING"})
    assert result.exit_code == 1 and "since must be an ISO 8601" in result.stderr
