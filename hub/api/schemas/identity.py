"""The OAuth2 / OpenID Connect documents, tokens and clients (docs/people.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "ClientView",
    "Directory",
    "Jwk",
    "Jwks",
    "OAuthError",
    "OpenIdConfiguration",
    "TokenForm",
    "TokenResponse",
    "UserInfo",
]


class Jwk(BaseModel):
    """A public Ed25519 signing key."""

    model_config = ConfigDict(extra="allow")

    kty: str = Field(examples=["OKP"])
    crv: str = Field(examples=["Ed25519"])
    x: str
    kid: str
    alg: str = Field(examples=["EdDSA"])
    use: str = Field(examples=["sig"])


class Jwks(BaseModel):
    keys: list[Jwk]


class OpenIdConfiguration(BaseModel):
    """Authorization-server metadata (RFC 8414, OpenID Connect Discovery)."""

    model_config = ConfigDict(extra="allow")

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    response_types_supported: list[str]
    grant_types_supported: list[str]
    code_challenge_methods_supported: list[str]
    scopes_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    claims_supported: list[str]


class ClientView(BaseModel):
    """One OAuth2 client of the caller's organisation (never its secret)."""

    client_id: str
    roles: list[str]
    created_at: str
    revoked_at: str | None


class DirectoryOrganisation(BaseModel):
    id: str = Field(examples=["org_3f9a0c1d2e4b5a69"])
    name: str = Field(examples=["Banca Italia"])
    kind: str = Field(examples=["bank"])


class DirectoryPerson(BaseModel):
    id: str = Field(examples=["usr_7c1e2d3f4a5b6c7d"])
    name: str = Field(examples=["Ana Silva"])
    org: str = Field(description="The person's organisation (its id).")


class Directory(BaseModel):
    """The names behind the ids the caller meets (``hub.identity.directory``)."""

    organisations: list[DirectoryOrganisation] = Field(
        description="Every member organisation.")
    people: list[DirectoryPerson] = Field(
        description="The people of the caller's organisation; of every organisation for the "
        "governance role.")


class UserInfo(BaseModel):
    """Who the bearer is (OpenID Connect userinfo); a person adds e-mail and name."""

    sub: str
    org: str
    org_name: str
    roles: list[str]
    email: str | SkipJsonSchema[None] = None
    email_verified: bool | SkipJsonSchema[None] = None
    name: str | SkipJsonSchema[None] = None


class TokenForm(BaseModel):
    """An RFC 6749 token request (``application/x-www-form-urlencoded``)."""

    grant_type: str = Field(description="client_credentials, authorization_code or "
                            "refresh_token", examples=["client_credentials"])
    client_id: str | SkipJsonSchema[None] = Field(
        default=None, description="Public clients, or client_secret_post.")
    client_secret: str | SkipJsonSchema[None] = Field(
        default=None, description="client_secret_post (or use HTTP Basic).")
    scope: str | SkipJsonSchema[None] = None
    code: str | SkipJsonSchema[None] = Field(default=None, description="authorization_code")
    redirect_uri: str | SkipJsonSchema[None] = Field(
        default=None, description="authorization_code")
    code_verifier: str | SkipJsonSchema[None] = Field(
        default=None, description="authorization_code (PKCE)")
    refresh_token: str | SkipJsonSchema[None] = Field(
        default=None, description="refresh_token")


class TokenResponse(BaseModel):
    """An access token (a JWT signed by the hub), and for people a refresh and an ID token."""

    model_config = ConfigDict(extra="allow")

    access_token: str
    token_type: str = Field(examples=["Bearer"])
    expires_in: int
    scope: str | SkipJsonSchema[None] = None
    refresh_token: str | SkipJsonSchema[None] = None
    id_token: str | SkipJsonSchema[None] = None


class OAuthError(BaseModel):
    """An RFC 6749 error (``invalid_client``, ``invalid_grant``, ``invalid_request``...)."""

    model_config = ConfigDict(extra="allow")

    error: str
    error_description: str | SkipJsonSchema[None] = None
