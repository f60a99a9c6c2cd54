"""The hub's HTTP layer (FastAPI): thin routes around the services.

::

    hub.api.app        create_app(settings): lifespan builds the services onto app.state
    hub.api.problems   every error -> RFC 9457 problem+json; request ids; generic 500s
    hub.api.deps       Annotated dependencies: services and the calling Actor
    hub.api.oauth      POST /oauth/token (authlib, client credentials; JWTs by hub.identity)
    hub.api.routes     meta (health, discovery, /v1/me, contracts), uploads, extracts

Importing the package builds nothing and reads no settings.
"""

from hub.api.app import create_app

__all__ = ["create_app"]
