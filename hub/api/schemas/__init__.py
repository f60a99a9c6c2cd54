"""The shapes of the HTTP API, as pydantic models for the OpenAPI document.

The services return JSON-ready values (``hub.query.service``, ``hub.governance``...); these
models type them, one module per group of routes. A route declares its model
(``response_model=``) and returns the service's JSON as it is: a result can hold a million
cells, so it is not validated twice. ``tests/api/test_openapi_conformance.py`` holds the
models and the answers together (schemathesis against a real hub), and the request bodies
are the domain's own models (``hub.query.request.QueryRequest``...).

::

    hub.api.schemas.queries     costs, balances, query results and estimates, history, rules
    hub.api.schemas.releases    published releases and the catalogue
    hub.api.schemas.governance  policy proposals and versions, spending, suggested bounds
    hub.api.schemas.audit       audit entries and pages
    hub.api.schemas.identity    the OAuth2 / OpenID documents, clients, tokens

May import: pydantic and the domain's request models.
"""
