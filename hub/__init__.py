"""tahub's hub: the service members upload to and (later) query.

Map of the architecture (domain core first; adapters around it)::

    domain core (no web framework, database driver, DuckDB or authlib; a test holds this)
      hub.errors       the one exception tree, mapped to problem+json at the edge
      hub.contracts    data contracts: pydantic models of contracts/*.yaml, the registry
      hub.validation   a contract compiled to one validating SQL query (partner or hub side)
      hub.actors       who is asking: Actor, roles, member kinds
      hub.yamlfile     YAML -> pydantic with file:line errors
      hub.accounting   exact privacy amounts (rho / epsilon as fractions), budget limits
      hub.policies     sharing policies: who may ask what, at what cost (policies/*.yaml)
      hub.proposals    a policy change request, the quorum, what a new version changes (diff)
      hub.queries      a query request -> an authorised, immutable QueryPlan (deny by default)
      hub.privacy      sensitivities, OpenDP noise and calibration, honest intervals
      hub.budget       the budget rules: may this charge go through, what is left
      hub.ratelimit    token buckets per member and route class, per client address (429)
    adapters
      hub.settings     the one settings object (TAHUB_* environment variables, settings file)
      hub.rowcheck     runs the validating query in DuckDB (shared with the connector)
      hub.db           metadata tables (SQLAlchemy) and Alembic migrations (hub/migrations)
      hub.storage      object storage: ObjectStore protocol, local folder, in-memory, open_store
      hub.objectkeys   the rules of object keys (relative, safe segments)
      hub.s3store      S3Store: S3/MinIO via minio, sha256 metadata, SSE, presigned multipart
      hub.extractcache local copies of committed extracts for queries (LRU, multi-process)
      hub.staging      resumable upload files (one .part per upload, offset = its size)
      hub.extracts     an uploaded Parquet file checked against its contract, hub side
      hub.ingest       IngestService: start/append/commit uploads, list/withdraw extracts
      hub.identity     members, OAuth2 clients, EdDSA-signed JWT access and ID tokens
      hub.signingkeys  the hub's Ed25519 signing keys (JWKS, rotation)
      hub.people       people of member organisations: roles, passwords, external identities
      hub.signin       the hub's OpenID provider: public clients, codes, refresh tokens
      hub.oidc         an external OpenID provider: discovery, JWKS rotation, validation
      hub.policychanges  policy versions and their four-eyes review: propose, approve, reject
      hub.policystore  the active policies of every process, refreshed from the store
      hub.ledger       the privacy-budget ledger and stored releases (atomic, exact)
      hub.units        the unit index: compact unit ids and commit-time row numbering (bounding)
      hub.engine       QueryEngine: a plan's exact cell aggregates over bounded rows, in DuckDB
      hub.query_service  check, charge, run, release: one DP query end to end
      hub.publications published releases: shared with all or named members, read free
      hub.audit        the append-only, hash-chained audit log: append, verify (tahub audit)
      hub.auditread    reading it: filters, who may read what, JSONL/CSV export
      hub.api          FastAPI app (create_app), problem+json, routes, token endpoint
      hub.logging      structlog set-up, request ids, secret redaction
      hub.metrics      Prometheus metrics (requests, uploads, queries, budget; multiprocess)
      hub.readiness    /readyz: the metadata store and the object store answer
      hub.cli          the `tahub` command (serve [--workers N], admin, contracts, demo)
      hub.personcli    `tahub admin person`: people and their sign-in
      hub.reference    generated reference docs (docs/settings.md)
      hub.demo         `tahub demo`: synthetic members and exports through the connector

The path of an upload: connector -> POST /v1/uploads -> PATCH chunks (staging) ->
POST .../commit -> hub.extracts re-validates every row -> object store -> one metadata
transaction makes the extract visible. See docs/ingest-api.md.

The path of a query: POST /v1/queries -> hub.queries.authorise (deny by default) -> a stored
release of the same plan? return it, free -> hub.privacy calibrates every measure -> the
ledger debits the cost (or refuses) -> hub.engine aggregates the bounded rows -> OpenDP noise
and intervals -> the release is stored -> response. See docs/queries.md.
"""

__version__ = "0.1.0"
