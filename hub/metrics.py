"""Prometheus metrics of one hub: requests, uploads, queries and privacy budget spent.

A :class:`Metrics` is made by ``create_app`` (never at import) and handed to the services
that do the work: the HTTP middleware (``hub.api.problems.RequestContext``) counts requests,
``hub.ingest.service`` uploads, ``hub.query.service`` queries and the budget they charge.
``GET /metrics`` serves :meth:`Metrics.render` in Prometheus' text format.

Labels never carry identifiers: routes are templates (``/v1/uploads/{upload_id}``), and no
label names a member organisation, client, upload or query.

Several worker processes (``tahub serve --workers N``) use prometheus_client's
multiprocess mode: ``tahub serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an emptied
folder before the workers start, each worker writes its values there, and ``/metrics``
from any worker reports the sum over all of them. The variable must be set before
prometheus_client is first imported in a process (the workers are fresh processes).

The names (docs/operations.md)::

    tahub_http_requests_total{method,route,status}              counter
    tahub_http_request_duration_seconds{method,route,status}    histogram
    tahub_uploads_started_total{dataset}                        counter
    tahub_uploads_committed_total{dataset}                      counter
    tahub_uploads_rejected_total{dataset}                       counter
    tahub_committed_bytes_total{dataset}                        counter (uploaded bytes)
    tahub_queries_total{dataset,outcome}                        counter (released|reused|failed)
    tahub_privacy_budget_spent_total{dataset,measure}           counter (rho or epsilon)
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["MULTIPROC_ENV", "UNMATCHED_ROUTE", "Metrics", "prepare_multiprocess_dir"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "(unmatched)"  # requests no route answers: one label value, not the path
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def prepare_multiprocess_dir(folder: Path) -> Path:
    """Create ``folder`` and remove the value files an earlier run left in it."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    return folder


class Metrics:
    """The hub's metrics, in a registry of their own (or the multiprocess files)."""

    def __init__(self) -> None:
        folder = os.environ.get(MULTIPROC_ENV)
        # prometheus_client chose its mode when it was first imported in this process.
        multiproc = bool(folder) and values.ValueClass is not values.MutexValue
        self._multiproc_dir = Path(folder) if folder and multiproc else None
        # Multiprocess mode: values go to files whatever the registry; render() collects
        # them. Otherwise a private registry, so that several apps in one process never
        # clash over names.
        registry = None if self._multiproc_dir else CollectorRegistry()
        self._registry = registry
        http = ("method", "route", "status")
        self.requests = Counter("tahub_http_requests", "HTTP requests answered.", http,
                                registry=registry)
        self.latency = Histogram("tahub_http_request_duration_seconds",
                                 "Time to answer an HTTP request, in seconds.", http,
                                 buckets=_LATENCY_BUCKETS, registry=registry)
        self.uploads_started = Counter("tahub_uploads_started", "Uploads started.",
                                       ("dataset",), registry=registry)
        self.uploads_committed = Counter("tahub_uploads_committed",
                                         "Uploads committed as new extracts.", ("dataset",),
                                         registry=registry)
        self.uploads_rejected = Counter("tahub_uploads_rejected",
                                        "Uploads refused at commit (checksum or contract).",
                                        ("dataset",), registry=registry)
        self.committed_bytes = Counter("tahub_committed_bytes",
                                       "Bytes of the uploaded files committed as extracts.",
                                       ("dataset",), registry=registry)
        self.queries = Counter("tahub_queries",
                               "DP queries answered: released (charged), reused (a stored "
                               "release, free) or failed after their charge.",
                               ("dataset", "outcome"), registry=registry)
        self.budget = Counter("tahub_privacy_budget_spent",
                              "Privacy budget charged, in the policy's measure (rho or "
                              "epsilon); a float view of the exact ledger.",
                              ("dataset", "measure"), registry=registry)

    # -- recording (called by the services) --------------------------------------------
    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def upload_started(self, dataset: str) -> None:
        self.uploads_started.labels(dataset).inc()

    def upload_committed(self, dataset: str, size: int) -> None:
        self.uploads_committed.labels(dataset).inc()
        self.committed_bytes.labels(dataset).inc(size)

    def upload_rejected(self, dataset: str) -> None:
        self.uploads_rejected.labels(dataset).inc()

    def query(self, dataset: str, outcome: str) -> None:
        self.queries.labels(dataset, outcome).inc()

    def budget_spent(self, dataset: str, measure: str, amount: Fraction) -> None:
        self.budget.labels(dataset, measure).inc(float(amount))

    # -- exposition --------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        if self._registry is not None:
            return generate_latest(self._registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self._multiproc_dir))
        return generate_latest(registry), CONTENT_TYPE_LATEST
