"""FastAPI dependencies: the services on ``app.state`` and the calling actor.

Routes declare what they need with the ``Annotated`` aliases below (``Ingest``,
``Identity``, ``Registry``, ``Policies``, ``Changes``, ``Queries``, ``Releases``, ``Audit``,
``CrowdReports``, ``Review``, ``Database``, ``Store``, ``AppSettings``, ``AppMetrics``,
``CurrentActor``, ``PartnerActor``, ``AnalystActor``);
nothing is global, everything comes from the app that ``create_app`` built.

Dependencies that only look something up are ``async`` (they run on the event loop): FastAPI
runs each ``def`` dependency in its threadpool, a thread hand-off per dependency and request
(measured: most of a stored answer's server time went to five of them). Only
:func:`current_actor` reads the database, and stays in the threadpool.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.actors import Actor, Role
from hub.api.ratelimit import RateLimits
from hub.contracts.model import ContractRegistry
from hub.errors import AuthError
from hub.governance.auditread import AuditReader
from hub.governance.policychanges import PolicyChanges
from hub.governance.policystore import PolicyStore
from hub.identity.service import IdentityService
from hub.ingest.service import IngestService
from hub.metrics import Metrics
from hub.osint.reports import Reports
from hub.osint.review import ReviewQueue
from hub.query.publications import Publications
from hub.query.service import QueryService
from hub.settings import Settings
from hub.storage.objects import ObjectStore

__all__ = [
    "AnalystActor",
    "AppMetrics",
    "AppSettings",
    "Audit",
    "Changes",
    "CrowdReports",
    "CurrentActor",
    "Database",
    "Identity",
    "Ingest",
    "PartnerActor",
    "Policies",
    "Queries",
    "Registry",
    "Releases",
    "Review",
    "Store",
    "current_actor",
]


def _service(name: str) -> Callable[[Request], Coroutine[Any, Any, Any]]:
    """A dependency returning ``Services.<name>`` of the app that serves the request."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state.services, name)

    get.__name__ = f"_{name}"
    return get


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Identity = Annotated[IdentityService, Depends(_service("identity"))]
Ingest = Annotated[IngestService, Depends(_service("ingest"))]
Registry = Annotated[ContractRegistry, Depends(_service("registry"))]
Policies = Annotated[PolicyStore, Depends(_service("policies"))]
Changes = Annotated[PolicyChanges, Depends(_service("policy_changes"))]
Queries = Annotated[QueryService, Depends(_service("queries"))]
Releases = Annotated[Publications, Depends(_service("publications"))]
CrowdReports = Annotated[Reports, Depends(_service("reports"))]
Review = Annotated[ReviewQueue, Depends(_service("review"))]
Audit = Annotated[AuditReader, Depends(_service("audit"))]
AppSettings = Annotated[Settings, Depends(_settings)]
Database = Annotated[sa.Engine, Depends(_service("engine"))]
Store = Annotated[ObjectStore, Depends(_service("store"))]


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


AppMetrics = Annotated[Metrics, Depends(_metrics)]

_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="Access token from POST /oauth/token (client credentials).",
)


def current_actor(
    request: Request,
    identity: Identity,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The actor behind ``Authorization: Bearer <token>`` (sync: runs in the threadpool).

    The request then counts against the actor's organisation's rate limit of its route
    class (hub.api.ratelimit), before any route runs: over it, :class:`TooManyRequests` (429)
    and nothing else happens.
    """
    if credentials is None:
        raise AuthError(
            "this route needs 'Authorization: Bearer <access token>' "
            "(get one from POST /oauth/token)"
        )
    actor = identity.verify_token(credentials.credentials)
    request.state.actor = actor  # a refusal from here on is audited (hub.api.problems)
    limits: RateLimits = request.app.state.rate_limits
    limits.member(actor.org, request.method, request.url.path)
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


async def _partner(actor: CurrentActor) -> Actor:
    actor.require(Role.PARTNER)
    return actor


PartnerActor = Annotated[Actor, Depends(_partner)]


async def _analyst(actor: CurrentActor) -> Actor:
    actor.require(Role.ANALYST)
    return actor


AnalystActor = Annotated[Actor, Depends(_analyst)]
