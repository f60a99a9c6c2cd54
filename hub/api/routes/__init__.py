"""HTTP routes, one module per resource. Each route parses, calls one service method and
serialises; rules live in the services (``hub.ingest.service``, ``hub.identity.service``)."""
