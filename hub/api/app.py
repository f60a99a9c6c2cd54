"""The hub's FastAPI application, built by :func:`create_app` from one :class:`Settings`.

Importing this module does nothing: ``create_app`` returns an app whose lifespan builds
every service (:func:`build_services`: metadata store migrated to the latest schema,
contract registry, object store, ingest and identity services), runs the ingest sweep
(expired uploads, orphan objects) and keeps them on ``app.state``. The CLI's admin commands
use the same :func:`build_services`, so the server and the CLI never wire things twice.

With several worker processes (``tahub serve --workers N``) uvicorn imports
:func:`app_from_env` in each worker: settings come from the environment (and the settings
file), and the workers neither migrate nor sweep, because ``tahub serve`` did both once
before starting them; a worker only checks that the schema is current.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import sqlalchemy as sa
import structlog
from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from hub import __version__
from hub.api.bodylimit import BodyLimit
from hub.api.oauth import TokenServer
from hub.api.oauth import router as oauth_router
from hub.api.openapi import install_openapi
from hub.api.problems import RequestContext, install_problem_handlers
from hub.api.ratelimit import REPORT_KEYS_PURPOSE, RateLimits
from hub.api.routes import (
    apidocs,
    extracts,
    governance,
    meta,
    ops,
    queries,
    releases,
    reports,
    review,
    signin,
    ui,
    uploads,
)
from hub.api.routes import audit as audit_routes
from hub.api.routes import sources as source_routes
from hub.contracts.model import ContractRegistry
from hub.errors import ConfigError
from hub.governance.audit import AuditLog
from hub.governance.auditread import AuditReader
from hub.governance.folding import FoldedAudit
from hub.governance.policies import default_policies_dir
from hub.governance.policychanges import PolicyChanges
from hub.governance.policystore import PolicyStore
from hub.governance.proposals import Quorum
from hub.governance.refusals import RefusalLog
from hub.identity.oidc import ExternalProvider
from hub.identity.service import IdentityService
from hub.identity.signin import SignIns
from hub.ingest.service import IngestService
from hub.logging import configure_logging
from hub.metrics import Metrics
from hub.osint.coding import CodeLists
from hub.osint.collection import Collection
from hub.osint.incidents import IncidentPublisher
from hub.osint.reports import Reports
from hub.osint.review import ReviewQueue
from hub.osint.sealing import Sealer, derived_secret
from hub.osint.sources import Fetcher, Poller, Sources, fetcher_for
from hub.query.engine import QueryEngine
from hub.query.ledger import Ledger
from hub.query.publications import Publications
from hub.query.service import QueryService, SingleFlight
from hub.settings import Settings, load_settings
from hub.storage.db import make_engine, schema_is_current, upgrade
from hub.storage.objects import ObjectStore, open_store
from hub.storage.ratebuckets import RateBuckets
from hub.storage.sandbox import DuckLimits

__all__ = ["Services", "app_from_env", "build_services", "create_app"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Services:
    """Everything a running hub holds; one per process.

    ``engine`` is the metadata store's SQLAlchemy engine; ``query_engine`` the DuckDB query
    engine over the committed extracts (hub.query.engine), which ``queries`` answers with.
    """

    settings: Settings
    engine: sa.Engine
    registry: ContractRegistry
    store: ObjectStore
    ingest: IngestService
    identity: IdentityService
    signins: SignIns
    policies: PolicyStore
    policy_changes: PolicyChanges
    ledger: Ledger
    query_engine: QueryEngine
    queries: QueryService
    publications: Publications
    audit: AuditReader
    folded_audit: FoldedAudit  # refusals and reused releases, repeats folded
    reports: Reports  # crowd reports from the public (hub.osint.reports)
    review: ReviewQueue  # the reviewers' queue (hub.osint.review)
    sources: Sources  # news feeds and folders (hub.osint.sources)
    fetcher: Fetcher  # fetches them into the collection (hub.osint.collection)
    incidents: IncidentPublisher  # reviewed incidents -> the incidents dataset

    def sweep(self) -> dict[str, int]:
        """Expired uploads, staging files and orphan objects (hub.ingest.service), then expired
        authorization codes, external sign-ins and refresh tokens (hub.identity.signin)."""
        report = dataclasses.asdict(self.ingest.sweep())
        report["sign_in_rows_removed"] = self.signins.sweep()
        return report

    def close(self) -> None:
        self.fetcher.close()  # a fetch in the background ends after its current entry
        self.folded_audit.flush()
        self.policies.stop_watching()
        self.query_engine.close()
        self.ingest.close()
        if self.identity.external is not None:
            self.identity.external.close()
        self.engine.dispose()


def build_services(
    settings: Settings, metrics: Metrics | None = None, *, migrate: bool = True
) -> Services:
    """Open the metadata store (migrated to head), contracts, object store and services.

    ``migrate=False`` (worker processes) only checks that the schema is at head.
    """
    registry = ContractRegistry.load(settings.contracts_dir)
    store = open_store(settings.storage, settings)
    engine = make_engine(settings.database_url)
    try:
        if migrate:
            upgrade(engine)
        elif not schema_is_current(engine):
            raise ConfigError(
                "the metadata store is not at the latest schema; run `tahub admin migrate`",
                field="TAHUB_DATABASE_URL",
            )
        audit = AuditLog(engine)
        changes = PolicyChanges(engine, registry, audit, Quorum(
            settings.policy_quorum, settings.policy_quorum_orgs))
        # after the migrations; an empty store is seeded from the policies folder, once
        problems = (changes.bootstrap(settings.policies_dir or default_policies_dir())
                    if migrate else [])
        policies = PolicyStore.load(changes, registry, tuple(problems))
        ingest = IngestService(engine=engine, store=store, registry=registry, settings=settings,
                               metrics=metrics)
        external = ExternalProvider(settings) if settings.oidc_issuer else None
        identity = IdentityService(engine=engine, settings=settings, external=external)
        signins = SignIns(engine, audit, settings.refresh_token_days)
        ledger = Ledger(engine)
        folded = FoldedAudit(audit, settings.audit_fold_seconds)
        query_engine = QueryEngine(store=store, ingest=ingest, settings=settings)
        queries = QueryService(policies=policies, registry=registry, ledger=ledger,
                               engine=query_engine, metrics=metrics, reused=folded,
                               wait=SingleFlight(max_seconds=settings.query_wait_seconds,
                                                 stale_seconds=settings.query_stale_seconds))
        publications = Publications(engine, audit)
        # every article and crowd report enters through one collection: one tagger (built
        # on first use) and one near-duplicate index per process; reports sealed with the
        # first reports key
        keys = settings.reports_key_list()
        collection = Collection(engine, seal=Sealer(keys).seal if keys else None)
        reports = Reports(engine, audit, keys=keys, bits=settings.reports_proof_bits,
                          max_chars=settings.reports_max_chars,
                          retention_days=settings.reports_retention_days,
                          collection=collection)
        incidents = IncidentPublisher(engine, ingest=ingest, identity=identity,
                                      registry=registry, limits=DuckLimits.of(settings))
        review = ReviewQueue(engine, audit, lists=CodeLists.from_registry(registry),
                             claim_minutes=settings.review_claim_minutes,
                             reports_keys=keys, merged=collection.merged,
                             decided=incidents.publish_soon)
        fetcher = fetcher_for(engine, settings, collection)  # TAHUB_FETCH_* (hub.osint.sources)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ConfigError(
            f"cannot open the metadata store ({type(exc).__name__}); "
            "check TAHUB_DATABASE_URL",
            field="TAHUB_DATABASE_URL",
        ) from None
    except BaseException:
        engine.dispose()
        raise
    return Services(
        settings=settings, engine=engine, registry=registry, store=store, ingest=ingest,
        identity=identity, signins=signins, policies=policies, policy_changes=changes,
        ledger=ledger, query_engine=query_engine, queries=queries, publications=publications,
        audit=AuditReader(audit), folded_audit=folded, reports=reports, review=review,
        sources=Sources(engine, audit=audit), fetcher=fetcher, incidents=incidents,
    )


def _is_secure_issuer(url: str) -> bool:
    """Whether authlib will accept token requests for this public URL (see hub.api.oauth)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


async def _sweep_every(services: Services, seconds: float) -> None:
    """The ingest sweep, again and again while the hub runs (every process: the sweep is safe
    to run concurrently, see hub.ingest.service); a failure is logged and retried next time."""
    while True:
        await asyncio.sleep(seconds)
        try:
            report = await run_in_threadpool(services.sweep)
        except Exception as exc:  # keep sweeping: the store may be back next time
            log.warning("sweep failed", error=type(exc).__name__)
        else:
            log.debug("swept", **report)


#: Seconds between two purges of crowd reports' texts whose retention ended, in every hub
#: process (one UPDATE: safe to run at once in several, cheap when nothing is due).
REPORTS_PURGE_SECONDS = 300


async def _purge_reports_every(services: Services, seconds: float) -> None:
    """The crowd reports' purge (hub.osint.reports), at start and then every ``seconds``;
    a failure is logged and retried next time."""
    while True:
        try:
            purged = await run_in_threadpool(services.reports.purge)
        except Exception as exc:  # keep purging: the store may be back next time
            log.warning("purge of crowd reports failed", error=type(exc).__name__)
        else:
            if purged.texts or purged.receipts:
                log.info("crowd reports purged", texts=purged.texts,
                         receipts=purged.receipts)
        await asyncio.sleep(seconds)


def _rate_limits(settings: Settings, services: Services) -> RateLimits:
    """The members' and the token endpoint's limits per process; the crowd reports' limit
    shared by every process on the metadata store, keyed under a secret derived from the
    first reports key (hub.api.ratelimit). A hub without reports keys refuses every report
    before storing anything: its report limit stays in the process."""
    keys = settings.reports_key_list()
    return RateLimits.per_minute(
        query=settings.query_rate_limit_per_minute,
        upload=settings.upload_rate_limit_per_minute,
        other=settings.rate_limit_per_minute,
        token=settings.token_rate_limit_per_minute,
        reports_per_hour=settings.reports_per_hour,
        report_buckets=RateBuckets(services.engine, "reports") if keys else None,
        report_secret=derived_secret(keys[0], REPORT_KEYS_PURPOSE) if keys else None,
    )


def create_app(settings: Settings, *, startup_tasks: bool = True) -> FastAPI:
    """The hub's ASGI app; nothing is opened until its lifespan starts.

    ``startup_tasks=False`` skips the migrations and the ingest sweep (a worker of
    ``tahub serve --workers N``, which ran them once before starting the workers).
    """
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        services = await run_in_threadpool(
            build_services, settings, metrics, migrate=startup_tasks
        )
        sweeper: asyncio.Task[None] | None = None
        purger: asyncio.Task[None] | None = None
        poller: Poller | None = None
        try:
            swept: dict[str, int] = {}
            if startup_tasks:  # else `tahub serve` swept once, before starting the workers
                swept = await run_in_threadpool(services.sweep)
            log.info(
                "hub started",
                version=__version__,
                public_url=settings.public_url,
                pid=os.getpid(),
                **swept,
            )
            if not _is_secure_issuer(settings.public_url):
                log.warning(
                    "TAHUB_PUBLIC_URL is plain http on a non-loopback host: the token "
                    "endpoint refuses requests (insecure_transport); use the https URL "
                    "of the TLS-terminating proxy",
                    public_url=settings.public_url,
                )
            app.state.services = services
            app.state.refusals = RefusalLog(services.folded_audit)
            services.policies.start_watching()  # reloads policy files when they change
            app.state.token_server = TokenServer(
                services.identity, services.signins, settings.public_url)
            app.state.rate_limits = _rate_limits(settings, services)
            if settings.sweep_interval_minutes:
                sweeper = asyncio.create_task(_sweep_every(
                    services, settings.sweep_interval_minutes * 60))
            purger = asyncio.create_task(_purge_reports_every(services, REPORTS_PURGE_SECONDS))
            if services.reports.accepting:  # the tagger, built now rather than on the first
                threading.Thread(  # report (about ten seconds); daemon: shutdown never waits
                    target=lambda: services.reports.tagger, name="tahub-tagger", daemon=True,
                ).start()
            if settings.collect:  # every process may poll: each due source is claimed once
                poller = Poller(services.sources, services.fetcher,
                                interval=settings.collect_poll_seconds)
                poller.start()
            yield
        finally:
            if poller is not None:
                await run_in_threadpool(poller.stop)
            if sweeper is not None:
                sweeper.cancel()
            if purger is not None:
                purger.cancel()
            await run_in_threadpool(services.close)  # pending folded entries written

    app = FastAPI(
        title="tahub hub",
        version=__version__,
        summary="Privacy-preserving data-sharing hub: ingest and DP query API",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from CDNs: the hub's own (hub.api.routes.apidocs)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_json_bytes,  # inside RequestContext
                       paths={reports.PATH: reports.body_limit(settings.reports_max_chars)})
    app.add_middleware(RequestContext, metrics=metrics)
    app.include_router(meta.router)
    app.include_router(ops.router)
    app.include_router(oauth_router)
    app.include_router(signin.router)
    app.include_router(uploads.router)
    app.include_router(extracts.router)
    app.include_router(queries.router)
    app.include_router(queries.budgets_router)
    app.include_router(queries.policies_router)
    app.include_router(releases.router)
    app.include_router(audit_routes.router)
    app.include_router(governance.router)
    app.include_router(reports.router)
    app.include_router(review.router)
    app.include_router(source_routes.router)
    ui.mount(app)
    apidocs.mount(app)
    install_openapi(app)  # problem+json answers in the document (hub.api.openapi)
    return app


def app_from_env() -> FastAPI:
    """uvicorn's app factory in each worker of ``tahub serve --workers N``.

    Settings come from the ``TAHUB_*`` variables and the settings file that ``tahub serve``
    passed down; migrations and the sweep already ran in ``tahub serve``.
    """
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings, startup_tasks=False)
