"""The published OpenAPI document (``/openapi.json``), kept truthful.

Every answer a route can give is declared, with its media type, so that a client can be
generated from the document and ``tests/api/test_openapi_conformance.py`` can hold the hub
to it:

* :class:`Problem` - the ``application/problem+json`` body that :mod:`hub.api.problems`
  emits for every refusal, as a schema;
* :func:`problems` - the ``responses=`` entries of the refusals a route (or a whole router)
  can answer: ``problems(401, 403, 404, 429, 503)``, each a :class:`Problem`, with the
  ``WWW-Authenticate`` (401) and ``Retry-After`` (429, 503) headers;
* :func:`declared_as` - a JSON body that the domain parses itself (``QueryRequest.parse``,
  ``ProposalRequest.parse``...: its refusals name fields its own way, after the role check),
  declared with its model's exact schema;
* :func:`files` - a 200 answer that is a file (CSV, Parquet, JSON lines), not JSON;
* :func:`install_openapi` - adds :class:`Problem` to the document's components and turns the
  default 422 that FastAPI declares for any route with parameters (a ``HTTPValidationError``
  the hub never sends) into the :class:`Problem` that :mod:`hub.api.problems` does send.

Which statuses a route declares is decided next to the route (hub.api.routes): what it, its
dependencies (``hub.api.deps``: 401, 403 for a role, 429, 503) and its service can answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, PlainValidator
from pydantic.json_schema import SkipJsonSchema, models_json_schema

from hub.api.problems import PROBLEM_JSON

__all__ = [
    "AUTHENTICATED",
    "Problem",
    "ProblemError",
    "declared_as",
    "files",
    "install_openapi",
    "problems",
]

_REF = "#/components/schemas/{model}"

#: What any route behind a bearer token can answer before it runs (hub.api.deps): no or a
#: bad token (401), over the organisation's rate limit (429), the metadata store down (503).
AUTHENTICATED = (401, 429, 503)


class ProblemError(BaseModel):
    """One of the problems a refusal lists (``hub.errors.RowError``)."""

    field: str | None = Field(description="The field, or null for the whole input.")
    reason: str
    row: int | SkipJsonSchema[None] = Field(
        default=None, description="The 1-based data row (extracts).")
    line: int | SkipJsonSchema[None] = Field(
        default=None, description="The line in a YAML file (policies, contracts).")
    value: str | SkipJsonSchema[None] = Field(
        default=None, description="The value, only for fields that are no identifiers.")


class Problem(BaseModel):
    """An RFC 9457 problem document: every refusal of the hub (docs/errors.md).

    ``code`` is stable (one per class of ``hub.errors``); the fields after ``request_id``
    are present when they apply, and a refusal may add others (``cells``, ``partners``...).
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="urn:tahub:problem:<code>",
                      examples=["urn:tahub:problem:forbidden"])
    title: str
    status: int
    detail: str = Field(description="What happened, for people; never a raw identifier.")
    code: str = Field(examples=["forbidden", "budget_exceeded", "invalid_input"])
    instance: str = Field(description="The request path.")
    request_id: str = Field(description="Also the X-Request-ID header; quote it in reports.")
    field: str | SkipJsonSchema[None] = Field(
        default=None, description="The input field at fault (dotted path).")
    rule: str | SkipJsonSchema[None] = Field(
        default=None, description="The rule that refused: role:analyst, budget:member, "
        "policy:<dataset>:min_partners, rate_limit:query...")
    errors: list[ProblemError] | SkipJsonSchema[None] = Field(
        default=None, description="Every problem found (at most 20 listed).")
    total_errors: int | SkipJsonSchema[None] = Field(
        default=None, description="How many problems there were in all.")
    retry_after: int | SkipJsonSchema[None] = Field(
        default=None, description="Seconds to wait (429, 503); also the Retry-After header.")
    requested: str | SkipJsonSchema[None] = Field(
        default=None, description="A budget refusal: the exact amount asked for.")
    remaining: str | SkipJsonSchema[None] = Field(
        default=None, description="A budget refusal: the exact amount left.")
    measure: str | SkipJsonSchema[None] = Field(
        default=None, description="A budget refusal: the privacy measure of the amounts.")
    offset: int | SkipJsonSchema[None] = Field(
        default=None, description="An upload conflict: the bytes the hub holds.")


_DESCRIPTIONS = {
    401: "No bearer token, or an invalid, expired or revoked one (`unauthenticated`).",
    403: "Authenticated but not allowed: a role, a policy rule or a budget (`forbidden`, "
         "`budget_exceeded`); `rule` names it.",
    404: "Unknown, or another organisation's (`not_found`, `unknown_dataset`).",
    409: "The object's state does not allow it (`conflict`); `rule` says why.",
    413: "Over a size limit (`too_large`).",
    422: "Invalid input (`invalid_input` and its kinds): `field` and `errors` name each "
         "problem.",
    429: "Over a rate limit (`rate_limited`); retry after `Retry-After` seconds.",
    503: "A dependency is down (`unavailable`); retry after `Retry-After` seconds.",
    507: "The work does not fit in the hub's configured limits (`out_of_capacity`); "
         "`setting` names the one its operator raises. Retrying as it is fails again.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds until a retry can succeed.",
                                "required": True, "schema": {"type": "integer"}}}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": 'Bearer realm="tahub"', "required": True,
                               "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of these refusal statuses: problem+json, with headers."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}},
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


def _unchanged(value: Any) -> Any:
    return value


def declared_as(model: type[BaseModel]) -> PlainValidator:
    """``Annotated`` metadata: a JSON body declared as ``model``, handed over as decoded JSON.

    For bodies the domain parses itself (``QueryRequest.parse``, ``ProposalRequest.parse``...:
    their refusals list every problem with its field, and come after the caller's role is
    checked), so that the document shows the model (a named component) while the parsing
    stays in one place: ``Annotated[Any, declared_as(QueryRequest), Body(examples=[...])]``.
    """
    return PlainValidator(_unchanged, json_schema_input_type=model)


def files(description: str, *, text: tuple[str, ...] = (), binary: tuple[str, ...] = ()
          ) -> dict[int | str, dict[str, Any]]:
    """A 200 answer that is a file, not JSON: one of the ``text`` or ``binary`` media types
    (their parameters, such as ``charset``, left out)."""
    content = {media.split(";")[0]: {"schema": {"type": "string"}} for media in text}
    content.update({media.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
                    for media in binary})
    return {200: {"description": description, "content": content}}


def _component_schemas() -> dict[str, Any]:
    _, top = models_json_schema([(Problem, "serialization")], ref_template=_REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


def _is_default_422(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def install_openapi(app: FastAPI) -> None:
    """Complete ``app``'s document once, when it is first asked for (module docstring)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if _is_default_422(responses.get("422", {})):
                    responses["422"] = problems(422)[422]
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas.update(_component_schemas())
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
