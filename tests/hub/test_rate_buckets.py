"""The crowd-report limit's token buckets in the metadata store (hub.storage.ratebuckets),
on a real SQLite file and a real PostgreSQL database: the limiter's semantics on an
injected wall clock, many threads (each with its own engine, as processes have) never
taking more than the burst, the daily rotation of the keys, pruning, and 0 disabling it."""

from __future__ import annotations

import calendar
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.api.ratelimit import AddressKeys, RateLimiter, RateLimits
from hub.errors import TooManyRequests, Unavailable
from hub.storage.db import downgrade, make_engine, rate_buckets, upgrade
from hub.storage.ratebuckets import PRUNE_SECONDS, RateBuckets
from tests.hub.postgres import postgres_database

HOUR = 3600
MIDNIGHT = float(calendar.timegm((2026, 3, 2, 0, 0, 0)))  # 2026-03-02T00:00:00Z


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = MIDNIGHT + 10 * HOUR) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(url: str) -> Iterator[sa.Engine]:
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def limiter_name() -> str:
    """A limiter of the test's own, so that tests sharing the session's PostgreSQL stay
    apart."""
    return f"t_{secrets.token_hex(6)}"


def limiter(buckets: RateBuckets, per_hour: int, clock: Clock) -> RateLimiter:
    return RateLimiter(per_hour, rule="rate_limit:reports", period=HOUR, clock=clock,
                       buckets=buckets)


def rows(engine: sa.Engine, name: str) -> list[tuple[str, float, float]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(rate_buckets.c.key, rate_buckets.c.tokens, rate_buckets.c.counted_at)
            .where(rate_buckets.c.limiter == name).order_by(rate_buckets.c.key))]


def test_burst_then_an_even_rate_on_the_wall_clock(engine: sa.Engine, limiter_name: str
                                                   ) -> None:
    clock = Clock()
    reports = limiter(RateBuckets(engine, limiter_name), 10, clock)  # one per 360 s
    assert [reports.try_acquire("k") for _ in range(10)] == [0.0] * 10
    assert reports.try_acquire("k") == pytest.approx(360.0)
    assert rows(engine, limiter_name) == [("k", pytest.approx(0.0), clock.now)]
    clock.now += 90
    assert reports.try_acquire("k") == pytest.approx(270.0)  # a refusal takes nothing
    assert rows(engine, limiter_name)[0][2] == clock.now - 90  # nor moves the time
    clock.now += 271
    assert reports.try_acquire("k") == 0.0
    assert reports.try_acquire("k") == pytest.approx(359.0, abs=1e-6)
    clock.now += 10 * HOUR  # refills to the burst, never beyond
    assert [reports.try_acquire("k") for _ in range(11)].count(0.0) == 10
    assert reports.try_acquire("other") == 0.0  # keys are independent


def test_a_refusal_is_too_many_requests_with_the_rule_and_whole_seconds(
    engine: sa.Engine, limiter_name: str
) -> None:
    clock = Clock()
    reports = limiter(RateBuckets(engine, limiter_name), 2, clock)
    reports.acquire("k", "this address")
    reports.acquire("k", "this address")
    with pytest.raises(TooManyRequests) as refused:
        reports.acquire("k", "this address")
    assert refused.value.status == 429
    assert refused.value.extra == {"rule": "rate_limit:reports", "retry_after": 1800}
    assert "2 requests an hour" in str(refused.value)
    clock.now += 1799.5  # half a second left: still at least one second
    with pytest.raises(TooManyRequests) as soon:
        reports.acquire("k", "this address")
    assert soon.value.extra["retry_after"] == 1
    clock.now += 0.5
    reports.acquire("k", "this address")


def test_threads_with_their_own_engines_never_take_more_than_the_burst(
    url: str, limiter_name: str
) -> None:
    burst, threads, each = 25, 12, 6
    clock = Clock()  # stands still: no token comes back while they race
    engines = [make_engine(url) for _ in range(threads)]
    barrier = threading.Barrier(threads)
    taken: list[bool] = []
    lock = threading.Lock()

    def work(engine: sa.Engine) -> None:
        mine = limiter(RateBuckets(engine, limiter_name), burst, clock)
        barrier.wait()
        got = [mine.try_acquire("flood") == 0.0 for _ in range(each)]
        with lock:
            taken.extend(got)

    try:
        workers = [threading.Thread(target=work, args=(e,)) for e in engines]
        for t in workers:
            t.start()
        for t in workers:
            t.join(timeout=120)
        assert len(taken) == threads * each
        assert taken.count(True) == burst  # the first request of the key included
        assert rows(engines[0], limiter_name) == [("flood", pytest.approx(0.0), clock.now)]
    finally:
        for e in engines:
            e.dispose()


def test_a_clock_behind_refills_nothing_and_never_moves_the_bucket_back(
    engine: sa.Engine, limiter_name: str
) -> None:
    ahead, behind = Clock(), Clock(MIDNIGHT + 10 * HOUR - 30)
    buckets = RateBuckets(engine, limiter_name)
    fast, slow = limiter(buckets, 10, ahead), limiter(buckets, 10, behind)
    for _ in range(10):
        assert fast.try_acquire("k") == 0.0
    assert slow.try_acquire("k") == pytest.approx(360.0)  # no negative time, no refill
    behind.now += 30 + 360  # caught up, then a token's worth of time
    assert slow.try_acquire("k") == 0.0
    assert rows(engine, limiter_name)[0][2] == behind.now


def test_keys_rotate_each_utc_day(engine: sa.Engine, limiter_name: str) -> None:
    clock = Clock(MIDNIGHT - 1)  # 2026-03-01T23:59:59Z
    keys = AddressKeys(b"s" * 32, clock)
    reports = limiter(RateBuckets(engine, limiter_name), 2, clock)
    yesterday = keys("203.0.113.9")
    for _ in range(2):
        reports.acquire(keys("203.0.113.9"), "this address")
    with pytest.raises(TooManyRequests):
        reports.acquire(keys("203.0.113.9"), "this address")
    clock.now = MIDNIGHT  # a new day: a new key, a new (full) bucket: the one extra burst
    today = keys("203.0.113.9")
    assert today != yesterday and len(today) == 32
    reports.acquire(today, "this address")
    stored = [key for key, _, _ in rows(engine, limiter_name)]
    assert sorted(stored) == sorted([yesterday, today])
    assert not any("203.0.113" in key for key in stored)
    # the same day, secret and address: the same key in every process; another secret's
    # keys mean nothing here
    assert AddressKeys(b"s" * 32, clock)("203.0.113.9") == today
    assert AddressKeys(b"t" * 32, clock)("203.0.113.9") != today


def test_rows_idle_for_a_period_are_pruned(engine: sa.Engine, limiter_name: str) -> None:
    clock = Clock()
    buckets = RateBuckets(engine, limiter_name)
    reports = limiter(buckets, 10, clock)
    for n in range(30):  # one new address every 5 minutes over 2.5 hours
        reports.acquire(f"addr{n}", "this address")
        clock.now += 300
    # each take prunes (at most once a minute) the rows idle for a period: the last hour's
    # stay, however many addresses came before
    last = clock.now - 300
    assert len(buckets) == HOUR // 300 + 1
    assert all(at >= last - HOUR for _, _, at in rows(engine, limiter_name))
    clock.now = last + HOUR + 300  # all of them idle for a period
    assert buckets.prune(before=clock.now - HOUR) == HOUR // 300 + 1
    assert len(buckets) == 0
    # a busy address's bucket is never pruned while it could still be short of the burst
    for _ in range(10):
        reports.acquire("busy", "this address")
    clock.now += PRUNE_SECONDS
    reports.acquire("quiet", "this address")  # prunes (a minute since the last)
    with pytest.raises(TooManyRequests):
        reports.acquire("busy", "this address")


def test_other_limiters_rows_are_not_touched(engine: sa.Engine, limiter_name: str) -> None:
    clock = Clock()
    mine = RateBuckets(engine, limiter_name)
    theirs = RateBuckets(engine, limiter_name + "x")
    limiter(theirs, 10, clock).acquire("k", "this address")
    clock.now += 2 * HOUR
    limiter(mine, 10, clock).acquire("k", "this address")
    assert mine.prune(before=clock.now + 1) == 1 and len(theirs) == 1


def test_zero_disables_and_never_touches_the_store(limiter_name: str) -> None:
    # an engine on a port where nothing listens: any statement would fail
    nowhere = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/tahub")
    try:
        limits = RateLimits.per_minute(query=1, upload=1, other=1, token=1,
                                       reports_per_hour=0,
                                       report_buckets=RateBuckets(nowhere, limiter_name),
                                       report_secret=b"s" * 32)
        assert not limits.reports.enabled
        for _ in range(1000):
            limits.report("203.0.113.9")
        # enabled, the same store is a 503, never a driver error
        with pytest.raises(Unavailable):
            RateBuckets(nowhere, limiter_name).take("k", burst=1, rate=1.0, now=0.0)
    finally:
        nowhere.dispose()


def test_two_processes_limits_on_one_store_are_one_limit(url: str, limiter_name: str
                                                         ) -> None:
    """Two hubs' RateLimits (their own engines, the same reports secret) on one store: an
    address gets the limit once, not once per hub."""
    clock, secret = Clock(), secrets.token_bytes(32)
    engines = [make_engine(url) for _ in range(2)]
    try:
        hubs = [RateLimits.per_minute(query=0, upload=0, other=0, token=0,
                                      reports_per_hour=3, wall_clock=clock,
                                      report_buckets=RateBuckets(e, limiter_name),
                                      report_secret=secret) for e in engines]
        hubs[0].report("198.51.100.7")
        hubs[1].report("198.51.100.7")
        hubs[0].report("198.51.100.7")
        for hub in hubs:
            with pytest.raises(TooManyRequests) as refused:
                hub.report("198.51.100.7")
            assert refused.value.extra == {"rule": "rate_limit:reports", "retry_after": 1200}
        hubs[1].report("198.51.100.8")
        assert len(rows(engines[0], limiter_name)) == 2
    finally:
        for e in engines:
            e.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0014_adds_the_table_and_takes_it_back(backend: str, tmp_path: Path
                                                         ) -> None:
    with (postgres_database() if backend == "postgresql"
          else _sqlite(tmp_path / "fresh.db")) as fresh:
        engine = make_engine(fresh)
        try:
            upgrade(engine)
            RateBuckets(engine, "reports").take("k", burst=1, rate=1.0, now=0.0)
            downgrade(engine, "0013")
            assert "rate_buckets" not in sa.inspect(engine).get_table_names()
            upgrade(engine)
            assert len(RateBuckets(engine, "reports")) == 0
        finally:
            engine.dispose()


@contextmanager
def _sqlite(path: Path) -> Iterator[str]:
    yield f"sqlite:///{path}"
