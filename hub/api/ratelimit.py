"""Rate limits: token buckets, one per key, in one process or shared by every process.

Domain core: no web framework, no database. The HTTP layer (``hub.api.deps`` for members,
the token endpoint and the crowd-report route for client addresses) asks
:meth:`RateLimiter.acquire` before anything else happens; a refusal is a
:class:`~hub.errors.TooManyRequests` naming the rule and the seconds until a token is
available, and nothing is spent or stored.

A bucket of a limit of ``n`` a period (a minute, or an hour for crowd reports) holds at
most ``n`` tokens (the burst) and gains ``n / period`` tokens a second; each request takes
one. A limit of 0 disables the limiter. Where the buckets live is a :class:`Buckets`:

* :class:`MemoryBuckets`, in the process, on its monotonic clock: the member limits (by
  route class) and the token endpoint's limit per address. With ``N`` hub processes
  (``TAHUB_WORKERS``) or replicas each has its own buckets, so the effective limit is up to
  ``N`` times the setting. They stay per process on purpose: they are on the path of every
  authenticated request and of every token request, where a write to the metadata store
  each time would queue every request behind SQLite's one writer and add a round trip on
  PostgreSQL; and a member that floods is a known organisation whose clients can be
  revoked.
* ``hub.storage.ratebuckets.RateBuckets``, in the metadata store, on the wall clock: the
  crowd-report limit (``TAHUB_REPORTS_PER_HOUR``), so that it holds across every process
  and replica on one store. That route is public (no account), rare for honest senders
  and costly for the hub (tagging, a sealed row), so one short write per report is
  cheap by comparison. Its keys are :class:`AddressKeys`: keyed hashes that rotate each
  UTC day, never the address.

Memory of :class:`MemoryBuckets` is bounded: past ``max_keys`` keys, full buckets (idle
long enough to be back at the burst, i.e. indistinguishable from a new one) are dropped,
then the least recently used ones (down to 90% of ``max_keys``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from hub.errors import TooManyRequests

__all__ = ["REPORT_KEYS_PURPOSE", "ROUTE_CLASSES", "AddressKeys", "Buckets", "MemoryBuckets",
           "RateLimiter", "RateLimits", "route_class"]

#: The route classes members are limited by (``rule: rate_limit:<class>``).
ROUTE_CLASSES = ("query", "upload", "other")
#: What the secret of the crowd-report limit's :class:`AddressKeys` is derived for, from
#: the first reports key (``hub.osint.sealing.derived_secret``).
REPORT_KEYS_PURPOSE = "tahub crowd reports: rate-limit keys v1"

_QUERY_PATHS = frozenset({"/v1/queries", "/v1/queries/estimate"})


def route_class(method: str, path: str) -> str:
    """``query`` (POST /v1/queries and /v1/queries/estimate), ``upload`` (/v1/uploads...)
    or ``other``."""
    if method.upper() == "POST" and path.rstrip("/") in _QUERY_PATHS:
        return "query"
    if path == "/v1/uploads" or path.startswith("/v1/uploads/"):
        return "upload"
    return "other"


def refill(tokens: float, at: float, now: float, *, burst: int, rate: float) -> float:
    """The tokens of a bucket that held ``tokens`` at ``at``, at ``now``: ``rate`` more a
    second, never more than ``burst``. Time never runs backwards for a bucket: a ``now``
    before ``at`` (a thread that read the clock before another took a token; on a shared
    store, a process whose clock is behind another's) refills nothing."""
    return min(float(burst), tokens + max(0.0, now - at) * rate)


class Buckets(Protocol):
    """Where one limiter's buckets live (module docstring)."""

    def take(self, key: str, *, burst: int, rate: float, now: float) -> float:
        """Take one token of ``key``'s bucket at ``now``: 0.0 if taken, else the seconds
        until one is available (nothing is taken then). A new key starts full."""
        ...

    def __len__(self) -> int:
        """How many buckets are kept (a full one may be forgotten: it equals a new one)."""
        ...


class MemoryBuckets:
    """Buckets in this process (thread-safe; module docstring for the bound on memory)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def take(self, key: str, *, burst: int, rate: float, now: float) -> float:
        with self._lock:
            tokens, at = self._buckets.get(key, (float(burst), now))
            tokens = refill(tokens, at, now, burst=burst, rate=rate)
            if tokens < 1.0:
                return (1.0 - tokens) / rate
            self._buckets[key] = (tokens - 1.0, max(at, now))
            self._buckets.move_to_end(key)
            if len(self._buckets) > self._max_keys:
                self._prune(now, burst, rate)
            return 0.0

    def _prune(self, now: float, burst: int, rate: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items()
                if refill(tokens, at, now, burst=burst, rate=rate) >= burst]
        for key in full:
            del self._buckets[key]
        keep = max(1, self._max_keys * 9 // 10)  # room to grow before the next scan
        while len(self._buckets) > keep:
            self._buckets.popitem(last=False)  # the least recently used

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimiter:
    """Token buckets of ``per_minute`` requests a ``period`` (default a minute), one per key,
    kept in ``buckets`` (default: :class:`MemoryBuckets` of ``max_keys``) and timed by
    ``clock`` (a monotonic one in one process; the wall clock for a shared store, since
    processes share no monotonic clock).

    ``period=3600``: ``per_minute`` is then a number of requests an hour (crowd reports)."""

    def __init__(
        self,
        per_minute: int,
        *,
        rule: str,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        period: int = 60,
        buckets: Buckets | None = None,
    ) -> None:
        if per_minute < 0 or max_keys < 1 or period < 1:
            raise ValueError("per_minute must be >= 0, max_keys and period >= 1")
        self.per_minute = per_minute
        self.rule = rule
        self.period = period
        self._rate = per_minute / period  # tokens a second
        self._unit = {60: "a minute", 3600: "an hour"}.get(period, f"in {period} s")
        self._clock = clock
        self.buckets: Buckets = buckets if buckets is not None else MemoryBuckets(max_keys)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def try_acquire(self, key: str) -> float:
        """Take one token of ``key``'s bucket: 0.0 if taken, else the seconds until one is
        available (nothing is taken then)."""
        if not self.enabled:
            return 0.0
        return self.buckets.take(key, burst=self.per_minute, rate=self._rate,
                                 now=self._clock())

    def acquire(self, key: str, what: str) -> None:
        """Take one token of ``key``'s bucket or raise :class:`TooManyRequests` (``what``
        names the caller in the message: "this member", "this address")."""
        wait = self.try_acquire(key)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise TooManyRequests(
                f"{what} is over its limit of {self.per_minute} requests {self._unit} "
                f"({self.rule}); retry in {retry_after} s",
                rule=self.rule,
                retry_after=retry_after,
            )

    def __len__(self) -> int:
        return len(self.buckets)


class AddressKeys:
    """The key of a client address in a limiter's buckets: HMAC-SHA256 of the UTC day and
    the address under ``secret`` (32 hex digits, 128 bits), never the address itself.

    With the secret shared by every hub process (derived from the first reports key,
    :data:`REPORT_KEYS_PURPOSE`), every process keys an address alike, so their buckets
    in the metadata store are one. The day in the input rotates the keys at each UTC
    midnight (``clock``: wall-clock seconds): a key stored today cannot be linked to the
    same address's key of another day, even by someone who holds the secret and reads
    every row. The price is that an address's bucket restarts, full, at the day boundary
    (as it does when the first reports key is rotated): at most one extra burst a day.
    That is acceptable: the limit is a brake on floods next to the proof of work, not a
    daily quota (an address may send ``24 x limit`` a day at the even rate anyway), and a
    key that stayed the same across days would be a lasting pseudonym of a sender's
    address in the store. Reading the stored keys needs the secret to test a guessed
    address (IPv4 is small enough to try whole); the rows live about one period
    (``hub.storage.ratebuckets``)."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the secret of address keys needs at least 16 bytes")
        self._secret = secret
        self._clock = clock

    def __call__(self, address: str) -> str:
        day = time.strftime("%Y-%m-%d", time.gmtime(self._clock()))
        return hmac.new(self._secret, f"{day}\n{address}".encode(),
                        hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class RateLimits:
    """The hub's limiters: members by route class (keyed by organisation), token requests
    (keyed by client address), both per process; and crowd reports (keyed by
    :class:`AddressKeys` of the client address: the addresses themselves are never kept,
    even in memory), shared through the metadata store when the hub takes reports."""

    members: dict[str, RateLimiter]
    token: RateLimiter
    reports: RateLimiter = field(
        default_factory=lambda: RateLimiter(0, rule="rate_limit:reports", period=3600))
    report_keys: AddressKeys = field(
        default_factory=lambda: AddressKeys(secrets.token_bytes(32)), repr=False)

    @classmethod
    def per_minute(
        cls, *, query: int, upload: int, other: int, token: int, reports_per_hour: int = 0,
        clock: Callable[[], float] = time.monotonic,
        report_buckets: Buckets | None = None, report_secret: bytes | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> RateLimits:
        """The limiters of these settings. ``report_buckets`` and ``report_secret`` (given
        together): the crowd-report limit's shared buckets and its :class:`AddressKeys`'
        secret, timed by ``wall_clock``; without them it is per process, on ``clock``,
        under a random secret (a hub without reports keys, which refuses every report)."""
        if (report_buckets is None) != (report_secret is None):
            raise ValueError("report_buckets and report_secret go together")
        limits = {"query": query, "upload": upload, "other": other}
        if report_buckets is not None and report_secret is not None:
            reports = RateLimiter(reports_per_hour, rule="rate_limit:reports", period=3600,
                                  clock=wall_clock, buckets=report_buckets)
            keys = AddressKeys(report_secret, wall_clock)
        else:
            reports = RateLimiter(reports_per_hour, rule="rate_limit:reports", period=3600,
                                  clock=clock)
            keys = AddressKeys(secrets.token_bytes(32), wall_clock)
        return cls(
            members={name: RateLimiter(n, rule=f"rate_limit:{name}", clock=clock)
                     for name, n in limits.items()},
            token=RateLimiter(token, rule="rate_limit:token", clock=clock),
            reports=reports,
            report_keys=keys,
        )

    def member(self, org: str, method: str, path: str) -> None:
        """Count one request of organisation ``org`` or raise :class:`TooManyRequests`."""
        self.members[route_class(method, path)].acquire(org, "this member")

    def token_request(self, address: str) -> None:
        """Count one token request from ``address`` or raise :class:`TooManyRequests`."""
        self.token.acquire(address, "this address")

    def report(self, address: str) -> None:
        """Count one crowd report from ``address`` or raise :class:`TooManyRequests`."""
        if self.reports.enabled:  # no hash to compute when there is no limit
            self.reports.acquire(self.report_keys(address), "this address")
