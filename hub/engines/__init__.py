"""Engines: what runs the hub's SQL, DuckDB in the hub (the default) or an Apache Spark cluster.

::

    hub.engines.runner   the Runner port (statements in DuckDB's dialect over Parquet files)
                         and DuckRunner, the hub's own DuckDB sandboxes
    hub.engines.dialect  a DuckDB statement as Spark SQL, transpiled by SQLGlot
    hub.engines.spark    SparkRunner: statements on a Spark cluster (Spark Connect or the
                         hub as the driver), cancelled at their time limit
    cluster_runner       the runner ``TAHUB_ENGINE`` names, for queries (hub.query.engine)
                         and commits (hub.ingest.clustered)

May import: hub.errors, hub.settings, hub.storage
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.errors import ConfigError
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.engines.runner import Runner

__all__ = ["cluster_runner"]


def cluster_runner(settings: Settings) -> Runner | None:
    """The cluster's runner when ``settings.engine`` names one (``spark``), else None (the
    hub's own DuckDB). Its session opens on first use."""
    if settings.engine != "spark":
        return None
    try:  # PySpark and SQLGlot only where Spark is used: the `spark` extra
        from hub.engines.spark import SparkRunner
    except ImportError as exc:
        raise ConfigError(f"TAHUB_ENGINE=spark needs the spark extra ({exc.name} is "
                          "missing): pip install 'tahub[spark]'", field="TAHUB_ENGINE") from None
    return SparkRunner(settings)
