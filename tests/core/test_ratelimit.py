"""The token buckets of hub.api.ratelimit, on an injected clock (no sleeping, no I/O)."""

from __future__ import annotations

import threading

import pytest

from hub.api.ratelimit import AddressKeys, MemoryBuckets, RateLimiter, RateLimits, route_class
from hub.errors import TooManyRequests


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_an_even_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(60, rule="rate_limit:x", clock=clock)  # one a second
    assert [limiter.try_acquire("a") for _ in range(60)] == [0.0] * 60
    assert limiter.try_acquire("a") == pytest.approx(1.0)
    clock.now += 0.25
    assert limiter.try_acquire("a") == pytest.approx(0.75)  # a refusal takes nothing
    clock.now += 0.75
    assert limiter.try_acquire("a") == 0.0
    assert limiter.try_acquire("a") == pytest.approx(1.0)
    clock.now += 3600  # refills to the burst, never beyond
    assert [limiter.try_acquire("a") for _ in range(61)].count(0.0) == 60


def test_keys_are_independent() -> None:
    limiter = RateLimiter(1, rule="rate_limit:x", clock=Clock())
    assert limiter.try_acquire("org_a") == 0.0
    assert limiter.try_acquire("org_a") == pytest.approx(60.0)
    assert limiter.try_acquire("org_b") == 0.0


def test_refusal_names_rule_and_whole_seconds_at_least_one() -> None:
    clock = Clock()
    limiter = RateLimiter(2, rule="rate_limit:query", clock=clock)
    limiter.acquire("a", "this member")
    limiter.acquire("a", "this member")
    with pytest.raises(TooManyRequests) as refused:
        limiter.acquire("a", "this member")
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert refused.value.extra == {"rule": "rate_limit:query", "retry_after": 30}
    clock.now += 29.9  # 0.1 s left: still at least one second
    with pytest.raises(TooManyRequests) as soon:
        limiter.acquire("a", "this member")
    assert soon.value.extra["retry_after"] == 1
    clock.now += 0.1
    limiter.acquire("a", "this member")


def test_zero_disables() -> None:
    limiter = RateLimiter(0, rule="rate_limit:x", clock=Clock())
    assert not limiter.enabled
    assert all(limiter.try_acquire("a") == 0.0 for _ in range(10_000))
    assert len(limiter) == 0
    with pytest.raises(ValueError):
        RateLimiter(-1, rule="rate_limit:x")


def test_memory_is_bounded_and_full_buckets_go_first() -> None:
    clock = Clock()
    limiter = RateLimiter(2, rule="rate_limit:token", clock=clock, max_keys=10)
    for n in range(9):
        limiter.try_acquire(f"10.0.0.{n}")
    clock.now += 60  # those nine are full again: the same as never seen
    for _ in range(2):
        limiter.acquire("busy", "this address")
    limiter.try_acquire("10.0.1.1")  # the eleventh key: the full ones are dropped
    assert len(limiter) == 2
    assert limiter.try_acquire("busy") > 0  # still limited, not forgotten
    for n in range(50):  # none full: the least recently used go, down to 9
        limiter.try_acquire(f"10.0.2.{n}")
    assert len(limiter) <= 10


def test_threads_never_take_more_than_the_burst() -> None:
    limiter = RateLimiter(100, rule="rate_limit:x", clock=Clock())  # the clock stands still
    taken: list[bool] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [limiter.try_acquire("org") == 0.0 for _ in range(50)]
        with lock:
            taken.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert taken.count(True) == 100 and len(taken) == 400


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("POST", "/v1/queries", "query"),
    ("POST", "/v1/queries/estimate", "query"),
    ("GET", "/v1/queries", "other"),
    ("GET", "/v1/queries/rel_1", "other"),
    ("POST", "/v1/uploads", "upload"),
    ("PATCH", "/v1/uploads/upl_1", "upload"),
    ("POST", "/v1/uploads/upl_1/commit", "upload"),
    ("GET", "/v1/uploadsx", "other"),
    ("GET", "/v1/budgets", "other"),
])
def test_route_classes(method: str, path: str, expected: str) -> None:
    assert route_class(method, path) == expected


def test_rate_limits_by_class() -> None:
    limits = RateLimits.per_minute(query=1, upload=0, other=2, token=1, clock=Clock())
    limits.member("org_a", "POST", "/v1/queries")
    with pytest.raises(TooManyRequests, match="rate_limit:query"):
        limits.member("org_a", "POST", "/v1/queries/estimate")
    for _ in range(100):
        limits.member("org_a", "PATCH", "/v1/uploads/upl_1")  # 0: no limit
    limits.member("org_a", "GET", "/v1/budgets")
    limits.member("org_a", "GET", "/v1/budgets")
    with pytest.raises(TooManyRequests, match="rate_limit:other"):
        limits.member("org_a", "GET", "/v1/budgets")
    limits.token_request("192.0.2.1")
    with pytest.raises(TooManyRequests, match="rate_limit:token"):
        limits.token_request("192.0.2.1")
    limits.token_request("192.0.2.2")


def test_address_keys_rotate_at_utc_midnight_and_never_hold_the_address() -> None:
    clock = Clock()
    clock.now = 1772409599.0  # 2026-03-01T23:59:59Z
    keys = AddressKeys(b"k" * 32, clock)
    before = keys("192.0.2.1")
    assert keys("192.0.2.1") == before and keys("192.0.2.2") != before
    assert len(before) == 32 and "192.0.2" not in before
    clock.now += 1  # 2026-03-02T00:00:00Z
    assert keys("192.0.2.1") != before
    assert AddressKeys(b"k" * 32, clock)("192.0.2.1") == keys("192.0.2.1")  # same secret
    with pytest.raises(ValueError):
        AddressKeys(b"short")


def test_without_shared_buckets_the_report_limit_is_per_process_under_a_random_secret(
) -> None:
    clock = Clock()
    limits = RateLimits.per_minute(query=0, upload=0, other=0, token=0, reports_per_hour=1,
                                   clock=clock)
    assert isinstance(limits.reports.buckets, MemoryBuckets)
    limits.report("192.0.2.1")
    with pytest.raises(TooManyRequests, match="rate_limit:reports") as refused:
        limits.report("192.0.2.1")
    assert refused.value.extra["retry_after"] == 3600
    other = RateLimits.per_minute(query=0, upload=0, other=0, token=0, reports_per_hour=1,
                                  clock=clock)
    assert other.report_keys("192.0.2.1") != limits.report_keys("192.0.2.1")
    with pytest.raises(ValueError, match="together"):
        RateLimits.per_minute(query=0, upload=0, other=0, token=0, report_buckets=MemoryBuckets())
