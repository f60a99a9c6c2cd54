"""Rate limits: thread-safe token buckets on a monotonic clock, one per key.

Domain core: no web framework. The HTTP layer (``hub.api.deps`` for members, the token
endpoint for client addresses) asks :meth:`RateLimiter.acquire` before anything else
happens; a refusal is a :class:`~hub.errors.TooManyRequests` naming the rule and the
seconds until a token is available, and nothing is spent or stored.

A bucket of a limit of ``n`` per minute holds at most ``n`` tokens (the burst) and gains
``n / 60`` tokens a second; each request takes one. A limit of 0 disables the limiter.

The buckets live in one process. With ``N`` hub processes (``TAHUB_WORKERS``) or replicas,
each has its own buckets, so the effective limit is up to ``N`` times the setting; a
shared limiter (e.g. in PostgreSQL or Redis) is future work. Memory is bounded: past
``max_keys`` keys, full buckets (idle long enough to be back at the burst, i.e.
indistinguishable from a new one) are dropped, then the least recently used ones
(down to 90% of ``max_keys``).
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

from hub.errors import TooManyRequests

__all__ = ["ROUTE_CLASSES", "RateLimiter", "RateLimits", "route_class"]

#: The route classes members are limited by (``rule: rate_limit:<class>``).
ROUTE_CLASSES = ("query", "upload", "other")

_QUERY_PATHS = frozenset({"/v1/queries", "/v1/queries/estimate"})


def route_class(method: str, path: str) -> str:
    """``query`` (POST /v1/queries and /v1/queries/estimate), ``upload`` (/v1/uploads...)
    or ``other``."""
    if method.upper() == "POST" and path.rstrip("/") in _QUERY_PATHS:
        return "query"
    if path == "/v1/uploads" or path.startswith("/v1/uploads/"):
        return "upload"
    return "other"


class RateLimiter:
    """Token buckets of ``per_minute`` requests a minute, one per key (thread-safe).

    ``period=3600``: ``per_minute`` is then a number of requests an hour (crowd reports)."""

    def __init__(
        self,
        per_minute: int,
        *,
        rule: str,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        period: int = 60,
    ) -> None:
        if per_minute < 0 or max_keys < 1 or period < 1:
            raise ValueError("per_minute must be >= 0, max_keys and period >= 1")
        self.per_minute = per_minute
        self.rule = rule
        self._rate = per_minute / period  # tokens a second
        self._unit = {60: "a minute", 3600: "an hour"}.get(period, f"in {period} s")
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.per_minute), now))
        return min(float(self.per_minute), tokens + (now - at) * self._rate)

    def try_acquire(self, key: str) -> float:
        """Take one token of ``key``'s bucket: 0.0 if taken, else the seconds until one is
        available (nothing is taken then)."""
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self._clock()
            tokens = self._tokens(key, now)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                self._buckets.move_to_end(key)
                if len(self._buckets) > self._max_keys:
                    self._prune(now)
                return 0.0
            return (1.0 - tokens) / self._rate

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

    def _prune(self, now: float) -> None:
        full = [k for k in self._buckets if self._tokens(k, now) >= self.per_minute]
        for key in full:
            del self._buckets[key]
        keep = max(1, self._max_keys * 9 // 10)  # room to grow before the next scan
        while len(self._buckets) > keep:
            self._buckets.popitem(last=False)  # the least recently used

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True)
class RateLimits:
    """The hub's limiters: members by route class (keyed by organisation), token requests
    (keyed by client address) and crowd reports (keyed by a hash of the client address
    under a random key of the process: the addresses themselves are never kept, even in
    memory, and the hashes mean nothing to another process or after a restart)."""

    members: dict[str, RateLimiter]
    token: RateLimiter
    reports: RateLimiter = field(
        default_factory=lambda: RateLimiter(0, rule="rate_limit:reports", period=3600))
    _salt: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @classmethod
    def per_minute(
        cls, *, query: int, upload: int, other: int, token: int, reports_per_hour: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> RateLimits:
        limits = {"query": query, "upload": upload, "other": other}
        return cls(
            members={name: RateLimiter(n, rule=f"rate_limit:{name}", clock=clock)
                     for name, n in limits.items()},
            token=RateLimiter(token, rule="rate_limit:token", clock=clock),
            reports=RateLimiter(reports_per_hour, rule="rate_limit:reports", clock=clock,
                                period=3600),
        )

    def member(self, org: str, method: str, path: str) -> None:
        """Count one request of organisation ``org`` or raise :class:`TooManyRequests`."""
        self.members[route_class(method, path)].acquire(org, "this member")

    def token_request(self, address: str) -> None:
        """Count one token request from ``address`` or raise :class:`TooManyRequests`."""
        self.token.acquire(address, "this address")

    def report(self, address: str) -> None:
        """Count one crowd report from ``address`` or raise :class:`TooManyRequests`."""
        key = hmac.new(self._salt, address.encode(), hashlib.sha256).hexdigest()[:32]
        self.reports.acquire(key, "this address")
