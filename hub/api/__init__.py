"""The hub's HTTP layer (FastAPI): thin routes around the services.

::

    hub.api.app        create_app(settings): lifespan builds the services onto app.state
    hub.api.problems   every error -> RFC 9457 problem+json; request ids; generic 500s
    hub.api.openapi    the published document: Problem, problems(401, 403...), declared bodies
    hub.api.schemas    the answers' shapes (pydantic) for the document, one module per group
    hub.api.deps       Annotated dependencies: services and the calling Actor
    hub.api.oauth      POST /oauth/token and the OpenID provider's endpoints (authlib)
    hub.api.bodylimit  the JSON body-size limit (413 before a byte is parsed)
    hub.api.ratelimit  token buckets per member and route class, per client address (429)
    hub.api.readiness  /readyz: the metadata store and the object store answer
    hub.api.routes     one module per group of routes (uploads, queries, governance, ui...)

Importing the package builds nothing and reads no settings.

May import: hub.errors, hub.settings, hub.actors, hub.logging, hub.metrics, hub.contracts,
hub.privacy, hub.storage, hub.governance, hub.identity, hub.ingest, hub.query, hub.osint,
hub.web
"""
