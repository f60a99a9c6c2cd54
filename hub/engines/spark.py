"""The Spark runner: the engine's statements on an Apache Spark cluster (``TAHUB_ENGINE=spark``).

The hub connects to a Spark Connect server (``TAHUB_SPARK_REMOTE``, ``sc://host:15002``: no
JVM in the hub) or is itself the driver of a cluster (``TAHUB_SPARK_MASTER``). Each statement
of :mod:`hub.query.sql` / :mod:`hub.query.bounds` is transpiled to Spark SQL
(:mod:`hub.engines.dialect`); the Parquet files it reads become temporary views of this
statement only (dropped when it ends), and its values are literals. Only exact aggregates
come back; noise is added in the hub by OpenDP, as with DuckDB.

Failures (docs/production.md, "Apache Spark"):

* the cluster unreachable or lost mid-query: :class:`~hub.errors.Unavailable` (503 with
  ``Retry-After``) after a few quick retries of Spark Connect's client (not its default of
  about ten minutes of back-off); a query is then recorded as spent without a release, as
  for any query that fails after its charge (:mod:`hub.query.service`);
* a statement over ``TAHUB_SPARK_QUERY_TIMEOUT``: its jobs are cancelled on the cluster
  (every job carries a tag of the statement's own; ``interruptTag``), then 503.

What the cluster's operators can see: the pseudonymised extracts and the statements (field
names, filter values, clamp ranges), and the exact aggregates while they are computed; never
a noisy release's noise, nor anything of the hub's ledger or keys.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pyarrow.parquet as pq
import structlog

from hub.engines.dialect import Source, SparkStatement, to_spark
from hub.engines.runner import Location, Params, UnreadableInput
from hub.errors import Unavailable
from hub.settings import Settings
from hub.storage.objects import ObjectStore, parquet_parts
from hub.storage.s3 import s3a_options

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkRunner"]

_log = structlog.get_logger("hub.engines.spark")
_T = TypeVar("_T")
#: What Spark's messages say of a Parquet file that cannot be decoded (its own fault).
_UNREADABLE = ("ParquetDecodingException", "ChecksumException", "CORRUPTED_PAGE",
               "FAILED_READ_FILE", "Could not read page")


class SparkRunner:
    """Runs the engine's DuckDB-dialect statements on Spark (module docstring)."""

    name = "spark"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: SparkSession | None = None
        self._lock = threading.Lock()

    def ready(self) -> None:
        """One round trip to the cluster (its Spark version; no job, no statement to
        transpile): unreachable, 503."""
        try:
            _ = self._spark().version
        except _failures() as exc:
            raise _unreachable(exc) from None

    def fetch(self, sql: str, params: Params, read: Sequence[Location]) -> list[tuple[Any, ...]]:
        return self._run(sql, params, lambda spark, stmt: [
            tuple(row) for row in spark.sql(stmt.sql).collect()])

    def write(self, sql: str, params: Params, out: Path, read: Sequence[Location]) -> int:
        def write(spark: SparkSession, stmt: SparkStatement) -> int:
            spark.sql(stmt.sql).write.mode("error").parquet(out.resolve().as_uri())
            # the parts' footers count the rows: no second job that reads them back
            return sum(pq.read_metadata(p).num_rows for p in parquet_parts(out))

        return self._run(sql, params, write)

    def locate(self, store: ObjectStore, key: str) -> list[Location]:
        """The object as the cluster reads it (a file or a folder of parts, from a folder
        it shares or from S3), listed by the cluster itself: no request to the store (the
        query engine reads each object's schema once, which finds a missing one)."""
        return [store.cluster_location(key)]

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            _quietly(session.stop)  # the server's session, or this process's driver

    # -- helpers ---------------------------------------------------------------------------
    def _spark(self) -> SparkSession:
        with self._lock:
            if self._session is None:
                try:
                    self._session = _connect(self._settings)
                except _failures() as exc:
                    raise _unreachable(exc) from None
            return self._session

    def _run(self, sql: str, params: Params,
             action: Callable[[SparkSession, SparkStatement], _T]) -> _T:
        spark = self._spark()
        frames: dict[str, DataFrame] = {}

        def frame(source: Source) -> DataFrame:
            if source.view not in frames:
                # pages written with CRC checksums are verified as they are read
                reader = (spark.read.option("mergeSchema", str(source.merge).lower())
                          .option("parquet.page.verify-checksum.enabled", "true"))
                df = reader.parquet(*(f if "://" in f else Path(f).resolve().as_uri()
                                      for f in source.files))
                if source.row_number:  # DuckDB's file_row_number: Spark's row index
                    df = df.selectExpr("*", "_metadata.row_index AS file_row_number")
                frames[source.view] = df
            return frames[source.view]

        tag = f"tahub-{secrets.token_hex(8)}"
        timeout = self._settings.spark_query_timeout
        expired = threading.Event()
        timer = threading.Timer(timeout, _interrupt, (spark, tag, expired))
        timer.daemon = True
        spark.addTag(tag)
        timer.start()
        try:
            stmt = to_spark(sql, params, lambda s: frame(s).columns)
            for source in stmt.sources:
                frame(source).createOrReplaceTempView(source.view)
            return action(spark, stmt)
        except _failures() as exc:
            _log.error("spark.statement_failed", error=type(exc).__name__,
                       timed_out=expired.is_set(), detail=str(exc)[:500])
            if not expired.is_set() and any(m in str(exc) for m in _UNREADABLE):
                raise UnreadableInput("a file the query reads cannot be decoded; retry later",
                                      rule="spark") from None
            if expired.is_set():
                raise Unavailable(
                    f"the query ran longer than the cluster's limit of {timeout} s and was "
                    "cancelled there: ask for fewer cells or a narrower filter, or the hub's "
                    "operator raises TAHUB_SPARK_QUERY_TIMEOUT", rule="spark_timeout",
                    setting="TAHUB_SPARK_QUERY_TIMEOUT") from None
            raise Unavailable("the Spark cluster could not run the query; retry later",
                              rule="spark") from None
        finally:
            timer.cancel()
            _quietly(lambda: spark.removeTag(tag))
            for view in frames:
                _quietly(partial(spark.catalog.dropTempView, view))


def _unreachable(exc: BaseException) -> Unavailable:
    _log.error("spark.unreachable", error=type(exc).__name__, detail=str(exc)[:500])
    return Unavailable("the Spark cluster could not be reached; retry later", rule="spark")


def _failures() -> tuple[type[BaseException], ...]:
    """What a statement raises when the cluster fails it or cannot be reached."""
    import grpc
    from pyspark.errors import PySparkException

    return (PySparkException, grpc.RpcError, ConnectionError)


def _connect(settings: Settings) -> SparkSession:
    """A session on the configured cluster (its address is checked by the settings), which
    reads an ``s3://`` store through S3A with :func:`~hub.storage.s3.s3a_options` (session
    settings: Spark copies them into the Hadoop settings of the files its statements read)."""
    session = _session(settings)
    if settings.storage.startswith("s3://"):
        try:
            for name, value in s3a_options(settings).items():
                session.conf.set(name, value)
        except BaseException:
            _quietly(session.stop)
            raise
    return session


def _session(settings: Settings) -> SparkSession:
    from pyspark.sql import SparkSession

    if settings.spark_remote is not None:
        # A session of this runner's own (the builder's getOrCreate would share one per
        # process), with short retries set before its first call to the server: 3 retries,
        # 0.2 s to 2 s apart (Spark Connect's default backs off for about ten minutes).
        from pyspark.sql.connect.client.core import DefaultChannelBuilder
        from pyspark.sql.connect.client.retries import DefaultPolicy
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        # A cluster back after an outage is reached again within seconds (gRPC's own
        # reconnection backs off up to two minutes by default).
        channel = DefaultChannelBuilder(settings.spark_remote, [
            ("grpc.initial_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 5000)])
        session = ConnectSession(connection=channel)
        # Statements are bounded by TAHUB_SPARK_QUERY_TIMEOUT and a failed one is answered
        # 503 (the analyst retries): no reattachable executions, whose releases go through
        # one thread pool shared by every session of the process and closed with any of them.
        session.client.disable_reattachable_execute()
        session.client.set_retry_policies([DefaultPolicy(
            max_retries=3, initial_backoff=200, max_backoff=2000, backoff_multiplier=2.0)])
        return cast("SparkSession", session)
    return (SparkSession.builder.appName("tahub").master(str(settings.spark_master))
            .config("spark.ui.enabled", "false")
            .getOrCreate())


def _interrupt(spark: SparkSession, tag: str, expired: threading.Event) -> None:
    expired.set()
    _log.warning("spark.statement_timeout", tag=tag)
    _quietly(lambda: spark.interruptTag(tag))


def _quietly(call: Callable[[], object]) -> None:
    """Tidy-up after the statement (a lost cluster must not hide the statement's error)."""
    try:
        call()
    except Exception as exc:  # tidy-up only: the statement's own outcome stands
        _log.debug("spark.cleanup_failed", error=type(exc).__name__)
