"""Token buckets in the metadata store: one limit shared by every hub process and replica.

:class:`RateBuckets` is the store's ``hub.api.ratelimit.Buckets`` (the crowd-report limit
per address). One row of ``rate_buckets`` per limiter and key: the tokens it held at
``counted_at``, wall-clock UTC seconds (processes share no monotonic clock). The
semantics are those of the in-memory buckets: a new key starts full (``burst`` tokens),
a bucket gains ``rate`` tokens a second up to the burst, each request takes one.

Taking a token is one statement in one short write transaction (:func:`~hub.storage.db.
write_transaction`)::

    INSERT INTO rate_buckets VALUES (limiter, key, burst - 1, now)   -- a new key: full - 1
    ON CONFLICT (limiter, key) DO UPDATE
       SET tokens = refilled - 1, counted_at = max(counted_at, now)
     WHERE refilled >= 1                                             -- else: take nothing
    RETURNING tokens
    -- refilled = min(burst, tokens + max(0, now - counted_at) * rate), on the stored row

No row returned is a refusal; the row is then read in the same transaction for the wait.
Why it is atomic:

* PostgreSQL: ``INSERT ... ON CONFLICT DO UPDATE`` either inserts or locks the existing
  row and evaluates the update on its newest committed version (READ COMMITTED waits for a
  concurrent writer of that row, then re-reads it), so two processes never both take the
  last token; two first requests of a key at once are one insert and one update, never a
  unique-key error. A refused request locks the row without changing it.
* SQLite: the transaction begins with ``BEGIN IMMEDIATE`` (the database's writer lock, as
  the ledger takes it), so the read and the write of the statement cannot be overtaken by
  another connection or process; a plain deferred transaction could fail to upgrade its
  read snapshot under WAL (``SQLITE_BUSY_SNAPSHOT``) instead of waiting.

Clocks: ``now - counted_at`` never counts below zero and ``counted_at`` never moves back,
so a process whose clock is behind another's refills nothing until its clock catches up:
a skew of ``s`` seconds can give at most ``s x rate`` tokens once, never a steady excess.

Pruning: a row idle for a whole period (``burst / rate`` seconds) is full again, the same
as no row, so at most every :data:`PRUNE_SECONDS` (on the limiter's clock) a take is
followed by a second short transaction that deletes the limiter's rows older than a
period. The table holds the keys seen in the last period, plus a minute's: with the
keys rotated daily (``hub.api.ratelimit.AddressKeys``), yesterday's rows go within a
period of midnight. A prune that fails is left to the next one.
"""

from __future__ import annotations

import threading
from contextlib import suppress

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from hub.errors import Unavailable
from hub.storage.db import rate_buckets, read_connection, writing

__all__ = ["PRUNE_SECONDS", "RateBuckets"]

#: Least seconds between two prunes of one limiter's rows by one process.
PRUNE_SECONDS = 60.0


class RateBuckets:
    """The buckets of limiter ``limiter`` (``reports``) in the metadata store on ``engine``
    (SQLite or PostgreSQL; module docstring)."""

    def __init__(self, engine: Engine, limiter: str) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"shared rate limits support SQLite and PostgreSQL, not "
                             f"{engine.dialect.name}")
        if not 0 < len(limiter) <= 32:
            raise ValueError("a limiter's name has 1 to 32 characters")
        self._engine = engine
        self.limiter = limiter
        self._pruned_at = float("-inf")
        self._prune_lock = threading.Lock()

    def take(self, key: str, *, burst: int, rate: float, now: float) -> float:
        """Take one token of ``key``'s bucket at ``now`` (UTC seconds): 0.0 if taken, else
        the seconds until one is available (nothing is taken then). A store that cannot be
        reached is :class:`~hub.errors.Unavailable`."""
        if burst < 1 or rate <= 0:
            raise ValueError("burst must be >= 1 and rate > 0")
        with writing(self._engine) as conn:
            taken = conn.execute(self._take(key, burst, rate, now)).first()
            # refused: the row is there (and locked), with less than one token
            row = None if taken is not None else conn.execute(
                sa.select(rate_buckets.c.tokens, rate_buckets.c.counted_at)
                .where(rate_buckets.c.limiter == self.limiter, rate_buckets.c.key == key)
            ).one()
        self._maybe_prune(now, burst / rate)
        if row is None:
            return 0.0
        refilled = min(float(burst), row.tokens + max(0.0, now - row.counted_at) * rate)
        return max((1.0 - refilled) / rate, 1e-6)  # refused: never 0 (float rounding)

    def _take(self, key: str, burst: int, rate: float, now: float) -> sa.Insert:
        t = rate_buckets.c
        pg = self._engine.dialect.name == "postgresql"
        insert = postgresql.insert if pg else sqlite.insert
        least, greatest = (sa.func.least, sa.func.greatest) if pg else (sa.func.min, sa.func.max)
        now_: sa.ColumnElement[float] = sa.literal(now, sa.Double())
        refilled = least(sa.literal(float(burst), sa.Double()),
                         t.tokens + greatest(0.0, now_ - t.counted_at) * rate)
        return (insert(rate_buckets)
                .values(limiter=self.limiter, key=key, tokens=float(burst) - 1.0, counted_at=now)
                .on_conflict_do_update(index_elements=[t.limiter, t.key],
                                       set_={"tokens": refilled - 1.0,
                                             "counted_at": greatest(t.counted_at, now_)},
                                       where=refilled >= 1.0)
                .returning(t.tokens))

    def _maybe_prune(self, now: float, period: float) -> None:
        with self._prune_lock:
            if now - self._pruned_at < PRUNE_SECONDS:
                return
            self._pruned_at = now
        with suppress(Unavailable):  # the take succeeded; the next prune deletes these rows
            self.prune(before=now - period)

    def prune(self, *, before: float) -> int:
        """Delete this limiter's rows counted before ``before`` (full again if that is a
        period ago); how many went."""
        with writing(self._engine) as conn:
            return conn.execute(sa.delete(rate_buckets).where(
                rate_buckets.c.limiter == self.limiter,
                rate_buckets.c.counted_at < before)).rowcount

    def __len__(self) -> int:
        """How many buckets of this limiter the store holds."""
        with read_connection(self._engine) as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(rate_buckets)
                                    .where(rate_buckets.c.limiter == self.limiter))
                       .scalar_one())
