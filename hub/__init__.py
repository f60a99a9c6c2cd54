"""tahub's hub: the service members upload to and query.

Map of the architecture, one folder per idea (each ``__init__`` says what it holds and what
it may import; ``tests/core/test_layering.py`` holds those rules)::

    hub/errors.py      the one exception tree, mapped to problem+json at the edge
    hub/settings.py    the one settings object (TAHUB_* environment variables, settings file)
    hub/actors.py      who is asking: Actor, roles, member kinds
    hub/yamlfile.py    YAML -> pydantic with file:line errors
    hub/logging.py     structlog set-up, request ids, secret redaction
    hub/metrics.py     Prometheus metrics (requests, uploads, queries, budget; multiprocess)

    hub/contracts/     what a dataset is and how a row is checked (shared with the connector)
    hub/privacy/       exact privacy amounts, budget rules, sensitivities, OpenDP noise,
                       honest intervals
    hub/storage/       object stores (local, S3/MinIO), extract cache, metadata database and
                       its migrations
    hub/engines/       what runs the SQL: DuckDB in the hub, or an Apache Spark cluster
                       (statements transpiled by SQLGlot)
    hub/governance/    sharing policies, four-eyes policy changes, the audit log
    hub/identity/      members, OAuth2 clients, signing keys, people, sign-in (own and
                       external OpenID providers)
    hub/ingest/        uploads -> checked, committed extracts; the unit index (bounding)
    hub/query/         request -> plan -> charge -> run -> release; ledger, publications
    hub/osint/         open sources and the public: feeds and folders, local tagging to the
                       taxonomy, near-duplicates, sealed crowd reports, the reviewers'
                       queue, reviewed incidents published as the ``incidents`` dataset
    hub/api/           FastAPI: create_app, problem+json, routes, OAuth endpoints, limits
    hub/web/           the web interface's static pages, served at /ui, the API docs' pages
                       (/docs, /redoc) and their assets, built with the package
    hub/cli/           the ``tahub`` command
    hub/demo/          ``tahub demo``: synthetic members and exports through the connector

Layers, inner first: the top-level modules, then ``contracts``, ``privacy`` and ``storage``,
then ``engines``, ``governance``, ``identity`` and ``ingest``, then ``query`` and ``osint``,
then ``api``, then ``cli`` and ``demo``. A layer imports only inner ones. The domain core
(``contracts.model``, ``contracts.validation``, ``privacy``, ``governance.policies``,
``governance.proposals``, ``query.request``, ``query.plan``, ``query.authorisation``,
``osint.tagging``, the top-level modules but ``logging``) imports no web framework,
database driver, DuckDB or authlib; adapters sit around it.

The path of an upload: connector -> POST /v1/uploads -> PATCH chunks (ingest.staging) ->
POST .../commit -> ingest.extracts re-validates every row -> object store -> ingest.units
numbers the rows -> one metadata transaction makes the extract visible. See
docs/ingest-api.md.

The path of a query: POST /v1/queries -> query.authorisation.authorise (deny by default) -> a stored
release of the same plan? return it, free -> privacy calibrates every measure -> the ledger
debits the cost (or refuses) -> query.engine aggregates the bounded rows -> OpenDP noise and
intervals -> the release is stored -> response. See docs/queries.md.

The path of an article or a crowd report: a source's fetch (osint.sources) or POST
/v1/public/reports (osint.reports) -> osint.collection: tagged (osint.tagging), a near-
duplicate joins its incident (osint.dedup), a report sealed -> the review queue
(osint.review) -> accepted incidents -> osint.incidents commits them through the ingest path
as the ``incidents`` dataset. See docs/osint.md.
"""

__version__ = "0.1.0"
