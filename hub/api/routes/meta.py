"""Liveness, discovery documents, the caller, and the contracts the hub knows."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from hub import __version__
from hub.api.deps import AppSettings, CurrentActor, Identity, Policies, Registry
from hub.api.oauth import AUTHORIZE_PATH, TOKEN_PATH
from hub.api.openapi import AUTHENTICATED, problems
from hub.api.schemas.identity import ClientView, Directory, Jwks, OpenIdConfiguration
from hub.contracts.model import Contract
from hub.identity.service import GRANT_TYPE, TOKEN_AUTH_METHODS
from hub.identity.signin import SCOPES
from hub.identity.signingkeys import ALGORITHM

__all__ = ["router"]

router = APIRouter()


class PolicyHealth(BaseModel):
    status: str  # "ok" | "errors"
    active: list[str]  # datasets with an active policy
    errors: list[dict[str, Any]]  # refused files: {file, line, field, reason}


class Health(BaseModel):
    #: What this server is: a client (``tahub login``) checks it before anything else, to
    #: tell a wrong address (another web server) from a hub.
    service: Literal["tahub"] = "tahub"
    status: str
    version: str
    policies: PolicyHealth


class Me(BaseModel):
    client_id: str
    org: str
    org_name: str
    roles: list[str]


class ContractSummary(BaseModel):
    dataset: str
    version: int
    title: str


@router.get("/health", tags=["meta"], summary="Liveness (no authentication)")
def health(policies: Policies) -> Health:
    return Health(
        status="ok",
        version=__version__,
        policies=PolicyHealth.model_validate(policies.current().health()),
    )


@router.get("/.well-known/jwks.json", tags=["meta"], summary="Public token-signing keys",
            response_model=Jwks)
def jwks(identity: Identity) -> dict[str, Any]:
    return identity.jwks()


@router.get(
    "/.well-known/openid-configuration", tags=["meta"], summary="Authorization-server metadata",
    response_model=OpenIdConfiguration,
)
def openid_configuration(settings: AppSettings) -> dict[str, Any]:
    base = settings.public_url
    return {
        "issuer": base,
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "userinfo_endpoint": base + "/oauth/userinfo",
        "jwks_uri": base + "/.well-known/jwks.json",
        "response_types_supported": ["code"],
        "grant_types_supported": [GRANT_TYPE, "authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": list(SCOPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "token_endpoint_auth_methods_supported": [*TOKEN_AUTH_METHODS, "none"],
        "claims_supported": ["sub", "email", "email_verified", "name", "org", "org_name",
                             "roles"],
    }


@router.get("/v1/me", tags=["meta"], summary="The calling client",
            responses=problems(*AUTHENTICATED))
def me(actor: CurrentActor) -> Me:
    return Me(
        client_id=actor.client_id,
        org=actor.org,
        org_name=actor.org_name,
        roles=sorted(r.value for r in actor.roles),
    )


@router.get("/v1/clients", tags=["meta"],
            summary="Your organisation's OAuth2 clients (ids and roles; never secrets)",
            response_model=list[ClientView], responses=problems(*AUTHENTICATED))
def org_clients(actor: CurrentActor, identity: Identity) -> list[dict[str, Any]]:
    return identity.org_clients(actor.org)


@router.get("/v1/directory", tags=["meta"],
            summary="Names of the organisations and people you may see (ids -> names)",
            response_model=Directory, responses=problems(*AUTHENTICATED))
def directory(actor: CurrentActor, identity: Identity) -> dict[str, Any]:
    return identity.directory.visible_to(actor)


@router.get("/v1/contracts", tags=["contracts"], summary="Every contract the hub knows",
            responses=problems(*AUTHENTICATED))
def list_contracts(actor: CurrentActor, registry: Registry) -> list[ContractSummary]:
    return [ContractSummary(dataset=c.dataset, version=c.version, title=c.title) for c in registry]


@router.get(
    "/v1/contracts/{dataset}/{version}", tags=["contracts"], summary="One contract version",
    response_model=Contract, responses=problems(*AUTHENTICATED, 404, 422),
)
def get_contract(
    dataset: str, version: int, actor: CurrentActor, registry: Registry
) -> JSONResponse:
    # as loaded: domains that name a shared list (ref) carry its categories too, which a
    # contract file may not (so the answer is not validated again as a Contract)
    return JSONResponse(registry.get(dataset, version).model_dump(mode="json"))
