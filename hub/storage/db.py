"""The metadata store: SQLAlchemy tables and engine, with Alembic migrations from day one.

The embedded default is a SQLite file; PostgreSQL is a change of ``TAHUB_DATABASE_URL``.
The schema is owned by the migrations in ``hub/storage/migrations`` (``upgrade`` runs them at
start); these table definitions are what the code queries and what the migration test compares
against, so that the two never drift.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hub.errors import TahubError, Unavailable

__all__ = [
    "audit_anchor",
    "audit_entries",
    "budget_locks",
    "clients",
    "downgrade",
    "extracts",
    "iso_utc",
    "json_text",
    "ledger_entries",
    "make_engine",
    "metadata",
    "oauth_codes",
    "organisations",
    "osint_decisions",
    "osint_fetches",
    "osint_incidents",
    "osint_items",
    "osint_receipts",
    "osint_sources",
    "people",
    "policy_approvals",
    "policy_versions",
    "publication_audience",
    "publications",
    "rate_buckets",
    "read_connection",
    "refresh_tokens",
    "releases",
    "schema_is_current",
    "signin_states",
    "unit_datasets",
    "unit_tokens",
    "upgrade",
    "uploads",
    "utcnow",
    "write_transaction",
    "writing",
]

metadata = MetaData()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction. On SQLite it takes the database's writer lock first thing
    (``BEGIN IMMEDIATE``), so that no read inside it can be overtaken by another writer;
    elsewhere it is ``engine.begin()`` (callers take their own row locks). Errors are the
    caller's to translate."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")  # transaction control is ours
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")


@contextmanager
def writing(engine: Engine, conflict: TahubError | None = None) -> Iterator[Connection]:
    """:func:`write_transaction` with driver errors translated: an integrity error (a unique
    index refused a row) becomes ``conflict`` when given, anything else
    :class:`~hub.errors.Unavailable` (503)."""
    try:
        with write_transaction(engine) as conn:
            yield conn
    except IntegrityError as exc:
        if conflict is None:
            raise Unavailable("the metadata store refused a write; retry later") from exc
        raise conflict from exc
    except SQLAlchemyError as exc:
        raise Unavailable("the metadata store is unavailable; retry later") from exc


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; a metadata store that cannot be reached is
    :class:`~hub.errors.Unavailable` (503), never a driver error.

    In autocommit mode: on PostgreSQL no ``BEGIN`` and no ``ROLLBACK`` travel to the server
    (two round trips of every read), and nothing changes for the reader, since at READ
    COMMITTED each statement sees what was committed when it began, in a transaction or not;
    SQLite's driver opens no transaction for a read either."""
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
    except SQLAlchemyError as exc:
        raise Unavailable("the metadata store is unavailable; retry later") from exc


def json_text(value: Any) -> str:
    """How every JSON column is written: compact, and plain JSON only (no NaN); a release's
    JSON too, before it is compressed (hub.query.answer)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_utc(when: datetime) -> str:
    """``2026-12-05T10:00:00Z``: UTC to the second, as the API shows every time."""
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the zone).

    A ``TypeDecorator``: a plain ``DateTime`` subclass is swapped for the dialect's own
    type at run time, so overriding its ``result_processor`` does nothing on SQLite.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:  # naive values are taken as UTC already
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


organisations = Table(
    "organisations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # per-member overrides of the extract limits (hub.ingest.extracts.ExtractLimits);
    # NULL: the hub's setting
    Column("max_extract_rows", BigInteger, nullable=True),
    Column("max_decoded_bytes", BigInteger, nullable=True),
    Column("max_decoded_ratio", Integer, nullable=True),
)
#: The columns of ``organisations`` that override, per member, the settings of the same name.
MEMBER_LIMITS = ("max_extract_rows", "max_decoded_bytes", "max_decoded_ratio")

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False, index=True),
    Column("secret_hash", String(255), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

# People (hub.identity.people): a person of a member organisation, with roles, who signs in through
# the hub's own OpenID provider (a local password, argon2) or an external identity provider
# (``issuer`` and ``subject``: the provider's stable id, linked at the first sign-in).
people = Table(
    "people",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False, unique=True),  # lower case
    Column("name", String(200), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("password_hash", String(255), nullable=True),
    Column("issuer", String(512), nullable=True),
    Column("subject", String(255), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled_at", UTCDateTime(), nullable=True),
    Column("last_sign_in_at", UTCDateTime(), nullable=True),
    Index("uq_people_issuer_subject", "issuer", "subject", unique=True),
)

# Authorization codes of the hub's OpenID provider (hub.identity.signin): stored by their
# sha256, used once (deleted on use), bound to a PKCE challenge, valid for minutes.
oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("person_id", String(64), ForeignKey("people.id"), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("nonce", String(255), nullable=True),
    Column("code_challenge", String(128), nullable=False),
    Column("code_challenge_method", String(8), nullable=False),
    Column("auth_time", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# Refresh tokens of people, by sha256, rotated at every use; a rotated token presented again
# revokes its whole ``family`` (a stolen token's reuse is detected, RFC 9700 4.14).
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family", String(64), nullable=False, index=True),
    Column("person_id", String(64), ForeignKey("people.id"), nullable=False, index=True),
    Column("client_id", String(64), nullable=False),
    Column("scope", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

# A sign-in through the external identity provider in progress (hub.identity.signin): the hub's own
# PKCE verifier and nonce for that provider, and the authorization request to resume.
signin_states = Table(
    "signin_states",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("code_verifier", String(128), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("request", JSON, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False, index=True),
    Column("dataset", String(63), nullable=False),
    Column("contract_version", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("filename", String(255), nullable=True),
    # receiving -> committed | aborted | rejected | expired
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("extract_id", String(64), nullable=True),
    # chunks: PATCHed to the hub's staging; direct: presigned multipart to the object store
    Column("transfer", String(16), nullable=False, server_default="chunks"),
    Column("multipart_id", String(1024), nullable=True),
    Column("part_bytes", BigInteger, nullable=True),
    Index("ix_uploads_org_sha", "org_id", "sha256"),
)

extracts = Table(
    "extracts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False, index=True),
    Column("dataset", String(63), nullable=False),
    Column("contract_version", Integer, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("object_key", String(512), nullable=False, unique=True),
    Column("status", String(16), nullable=False),  # visible | withdrawn
    Column("created_at", UTCDateTime(), nullable=False),
    Column("withdrawn_at", UTCDateTime(), nullable=True),
    Column("report", JSON, nullable=False),
    Index("ix_extracts_dataset_status", "dataset", "status"),
    # Idempotency: one visible extract per organisation, dataset and content.
    Index(
        "uq_extracts_visible_content",
        "org_id",
        "dataset",
        "sha256",
        unique=True,
        sqlite_where=text("status = 'visible'"),
        postgresql_where=text("status = 'visible'"),
    ),
)


# The privacy-budget ledger (hub.query.ledger). Amounts are exact: numerator and denominator as
# integers, never a float column. ``shape`` describes the query, never a value from the data.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("dataset", String(63), nullable=False),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False),
    Column("measure", String(8), nullable=False),  # zcdp | pure
    Column("amount_num", BigInteger, nullable=False),
    Column("amount_den", BigInteger, nullable=False),
    # the delta of approximate DP (key selection); 0/1 for every other query
    Column("delta_num", BigInteger, nullable=False, server_default="0"),
    Column("delta_den", BigInteger, nullable=False, server_default="1"),
    Column("query_key", String(64), nullable=False),  # sha256 of the canonical plan
    Column("status", String(16), nullable=False),  # charged | released | failed
    Column("created_at", UTCDateTime(), nullable=False),
    Column("released_at", UTCDateTime(), nullable=True),
    Column("shape", JSON, nullable=False),
    Index("ix_ledger_entries_dataset_created", "dataset", "created_at"),
    Index("ix_ledger_entries_org_dataset", "org_id", "dataset"),
)

releases = Table(
    "releases",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("entry_id", String(64), ForeignKey("ledger_entries.id"), nullable=False,
           unique=True),
    Column("dataset", String(63), nullable=False),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False),
    Column("query_key", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # the result's JSON, zstd-compressed in the form every answer extends without decoding
    # it (hub.query.answer): what a repeated query sends
    Column("body", LargeBinary, nullable=False),
    # one stored release per member, dataset and canonical query: a repeat costs nothing
    Index("uq_releases_org_dataset_key", "org_id", "dataset", "query_key", unique=True),
)

# Published releases (hub.query.publications): a governance officer shares a release its
# organisation paid for with all members (``audience_all``) or with the organisations listed
# in ``publication_audience``. ``summary`` is the release's public shape (dimensions,
# measures and mechanisms, filters, cost), copied at publication so that the catalogue never
# reads the stored cells. Withdrawn rows stay (status ``withdrawn``).
publications = Table(
    "publications",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("release_id", String(64), ForeignKey("releases.id"), nullable=False),
    Column("org_id", String(64), ForeignKey("organisations.id"), nullable=False),
    Column("dataset", String(63), nullable=False),
    Column("title", String(200), nullable=False),
    Column("note", Text, nullable=True),
    Column("audience_all", Boolean, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # active | withdrawn
    Column("published_by", String(64), nullable=False),  # the client id
    Column("published_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("withdrawn_at", UTCDateTime(), nullable=True),
    Index("ix_publications_status", "status", "audience_all"),
    # one active publication per release: publishing it again updates that one
    Index(
        "uq_publications_active_release",
        "release_id",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
)

publication_audience = Table(
    "publication_audience",
    metadata,
    Column("publication_id", String(64), ForeignKey("publications.id"), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.id"), primary_key=True),
    Index("ix_publication_audience_org", "org_id"),
)

# Sharing-policy versions (hub.governance.policychanges): every proposal is a numbered version of
# its dataset's policy, with the exact YAML text proposed. status: pending -> scheduled (approved,
# effective later) -> active -> retired (replaced); or pending -> rejected | withdrawn | superseded
# (another change of the same base was approved first). ``base_id`` is the dataset's latest approved
# version when the proposal was made (what its diff is against).
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("dataset", String(63), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("base_id", String(64), nullable=True),
    Column("restores", Integer, nullable=True),  # the version number this one restores
    Column("note", Text, nullable=True),
    Column("proposed_by", String(128), nullable=False),
    Column("proposed_org", String(64), nullable=True),
    Column("proposed_at", UTCDateTime(), nullable=False),
    Column("effective_at", UTCDateTime(), nullable=True),  # None: as soon as approved
    Column("decided_by", String(128), nullable=True),  # last approver, or who rejected
    Column("decided_at", UTCDateTime(), nullable=True),
    Column("reason", Text, nullable=True),  # why it was rejected
    Column("activated_at", UTCDateTime(), nullable=True),
    Column("retired_at", UTCDateTime(), nullable=True),
    Index("uq_policy_versions_dataset_number", "dataset", "number", unique=True),
    Index("ix_policy_versions_status", "status"),
    # at most one active version per dataset
    Index(
        "uq_policy_versions_active",
        "dataset",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
)

# The approvals of a version: one row per distinct approving officer.
policy_approvals = Table(
    "policy_approvals",
    metadata,
    Column("version_id", String(64), ForeignKey("policy_versions.id"), primary_key=True),
    Column("actor", String(128), primary_key=True),
    Column("org_id", String(64), nullable=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("note", Text, nullable=True),
)

# One row per dataset, locked (SELECT ... FOR UPDATE) by every charge on PostgreSQL so that
# charges to one dataset are serialised; SQLite serialises writers with BEGIN IMMEDIATE.
budget_locks = Table(
    "budget_locks",
    metadata,
    Column("dataset", String(63), primary_key=True),
)

# What each member has spent on each dataset per UTC day, exactly (fractions as text: their
# denominators may outgrow 64 bits), kept with every charge in its transaction, so that
# checking a budget reads a row per member and day, not every ledger entry (hub.query.ledger).
ledger_totals = Table(
    "ledger_totals",
    metadata,
    Column("dataset", String(63), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.id"), primary_key=True),
    Column("measure", String(8), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("amount", String(200), nullable=False),  # a Fraction's str: "3/20"
    Column("delta", String(200), nullable=False),
    Column("entries", Integer, nullable=False),
)

# The audit log (hub.governance.audit): append-only, hash-chained. ``seq`` is handed out under the
# lock of the one ``audit_anchor`` row (id 1), which also keeps the latest (seq, hash) so that a
# truncated tail is detected. ``details`` holds shapes, costs and counts, never data values.
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(128), nullable=True),  # a client id, "cli:<user>", None: the hub
    Column("org_id", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=True),
    Column("object_id", String(128), nullable=True),
    Column("dataset", String(63), nullable=True),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_entries_at", "at"),
    Index("ix_audit_entries_dataset_action", "dataset", "action"),
)

audit_anchor = Table(
    "audit_anchor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# The unit index when the metadata store is PostgreSQL (hub.ingest.units.PostgresUnitIndex; the
# embedded default keeps it in DuckDB files, and these tables stay empty on SQLite). One row
# per dataset, locked (SELECT ... FOR UPDATE) by every commit of that dataset, with the last
# unit id handed out; and per dataset, each privacy-unit token's id and rows seen so far.
unit_datasets = Table(
    "unit_datasets",
    metadata,
    Column("dataset", String(63), primary_key=True),
    Column("last_unit", BigInteger, nullable=False),
    Column("salt", String(64), nullable=True),  # key of the rows' bounding priorities
)

unit_tokens = Table(
    "unit_tokens",
    metadata,
    Column("dataset", String(63), primary_key=True),
    Column("token", Text, primary_key=True),
    Column("unit", BigInteger, nullable=False),
    Column("rows_seen", BigInteger, nullable=False),
    # one token per id: the lock hands out each id once, and the database holds it too
    Index("uq_unit_tokens_dataset_unit", "dataset", "unit", unique=True),
    # room on every page, so that each commit's rows_seen updates are HOT (no index writes)
    postgresql_with={"fillfactor": 50},
)


# Open-source and public collection (hub.osint). A source is a feed or a folder the operator
# configured; every fetch of it is recorded, with what it found and what it skipped and why.
# An item is one article or one crowd report: an article's text is public and kept as text;
# a report's text is kept only encrypted (``sealed``) until its retention ends. Items that
# report the same incident (near-duplicate texts, or merged by a reviewer) share one
# incident, which reviewers code; its ``coded`` tags are what the incidents dataset holds.
osint_sources = Table(
    "osint_sources",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # feed | folder
    Column("location", String(2000), nullable=False),  # the feed's URL, or the folder
    Column("language", String(8), nullable=True),  # declared; None: identified per item
    Column("every_minutes", Integer, nullable=False),
    Column("trust", String(8), nullable=False),  # high | medium | low
    Column("enabled", Boolean, nullable=False),
    Column("etag", String(500), nullable=True),  # conditional requests (ETag, Last-Modified)
    Column("last_modified", String(100), nullable=True),
    Column("next_fetch_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # hosts besides the feed's own that its redirects and article links may reach
    Column("hosts", JSON, nullable=True),
    Column("seen", JSON, nullable=True),  # a folder's files already read {path: mtime:size}
)

osint_fetches = Table(
    "osint_fetches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source_id", String(64), ForeignKey("osint_sources.id"), nullable=False,
           index=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("outcome", String(16), nullable=False),  # running | ok | not_modified | failed
    Column("http_status", Integer, nullable=True),
    Column("found", Integer, nullable=False),
    Column("added", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("skipped", JSON, nullable=False),  # [{"ref": ..., "reason": ...}]
    Column("error", String(1000), nullable=True),
)

osint_incidents = Table(
    "osint_incidents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # queued | claimed | accepted | rejected | merged (into ``merged_into``)
    Column("state", String(16), nullable=False, index=True),
    Column("merged_into", String(64), ForeignKey("osint_incidents.id"), nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", UTCDateTime(), nullable=True),
    Column("coded", JSON, nullable=True),  # the reviewed tags (hub.osint.incidents)
    Column("reviewed_by", String(64), nullable=True),
    Column("reviewed_at", UTCDateTime(), nullable=True),
)

osint_items = Table(
    "osint_items",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # article | report
    Column("source_id", String(64), ForeignKey("osint_sources.id"), nullable=True),
    Column("fetch_id", String(64), ForeignKey("osint_fetches.id"), nullable=True),
    Column("incident_id", String(64), ForeignKey("osint_incidents.id"), nullable=False,
           index=True),
    Column("url", String(2000), nullable=True),
    Column("title", String(1000), nullable=True),
    Column("text", Text, nullable=True),  # an article's text (public)
    Column("sealed", LargeBinary, nullable=True),  # a report's text, encrypted
    Column("language", String(8), nullable=True),
    Column("published_at", UTCDateTime(), nullable=True),
    Column("collected_at", UTCDateTime(), nullable=False),
    # sha256 of the folded text: the same text again from the same source or address is
    # not stored twice; from another outlet it is one more source of the same incident
    Column("fingerprint", String(64), nullable=False, index=True),
    Column("minhash", LargeBinary, nullable=True),  # near-duplicates (hub.osint.dedup)
    Column("tagging", JSON, nullable=True),  # the tagger's suggestions (hub.osint.tagging)
    Column("purge_after", UTCDateTime(), nullable=True),  # a report's text goes then
)

# One row per reviewer's decision on an incident: what was suggested and what was decided,
# for the audit and for the per-tag precision of the suggestions.
osint_decisions = Table(
    "osint_decisions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("incident_id", String(64), ForeignKey("osint_incidents.id"), nullable=False,
           index=True),
    Column("reviewer", String(64), nullable=False),
    Column("decided_at", UTCDateTime(), nullable=False),
    Column("action", String(16), nullable=False),  # accept | correct | reject | merge
    Column("suggested", JSON, nullable=False),
    Column("coded", JSON, nullable=True),
    Column("note", String(1000), nullable=True),
)

# One row per crowd report received (hub.osint.reports): the receipt the reporter was given,
# the proof-of-work challenge it spent (its SHA-256: each challenge is accepted once, by any
# hub process) and the item it became (None when it was not stored). No address, no text.
osint_receipts = Table(
    "osint_receipts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("challenge", String(64), nullable=False, unique=True),
    Column("item_id", String(64), ForeignKey("osint_items.id"), nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
)

# Token buckets shared by every hub process on this store (hub.storage.ratebuckets): one row
# per limiter (``reports``) and key (a keyed hash that rotates daily, hub.api.ratelimit.
# AddressKeys; never an address), with the tokens counted at ``counted_at`` (wall-clock UTC
# seconds since the epoch: processes share no monotonic clock). A row idle for a period is
# full again, the same as no row, and is deleted.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("limiter", String(32), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("tokens", Double(), nullable=False),
    Column("counted_at", Double(), nullable=False),
    Index("ix_rate_buckets_limiter_counted_at", "limiter", "counted_at"),
)

#: Connections a hub process keeps open, and how many more it opens under a burst (a
#: request waits for one beyond that): 20 at most per process, docs/production.md (Sizing).
POOL_SIZE, POOL_OVERFLOW = 10, 10


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    The pool keeps ``POOL_SIZE`` connections open, enough for the request threads one busy
    hub process runs at once: a pool smaller than that closes a connection each time one
    is returned beyond its size and opens a new one for the next request (measured: a
    quarter of a reused answer's time on SQLite, a fork on the PostgreSQL server). Each
    PostgreSQL connection is pinged when taken from the pool, so that a hub rides out a
    database restart (tests/hub/test_database_faults.py); a SQLite file cannot go away
    under an open connection, so its connections are not pinged."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, json_serializer=json_text,
                           pool_pre_ping=not url.startswith("sqlite"),
                           pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` with Alembic (idempotent)."""
    from alembic import command

    _migrate(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (rolling tahub back to an older release)."""
    from alembic import command

    _migrate(engine, lambda cfg: command.downgrade(cfg, revision))


def _migrate(engine: Engine, run: Callable[[Any], None]) -> None:
    """Run ``run`` (an Alembic command) on one connection, in one transaction.

    On SQLite, foreign keys are off while it runs and checked before it commits, as SQLite
    prescribes for schema changes: a migration that rebuilds a table (Alembic's batch mode:
    copy, drop, rename) would otherwise fail on the rows that refer to it (a release's
    publications). The pragma is set outside the transaction, where it takes effect."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                run(cfg)
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise RuntimeError("a migration left rows whose references are broken")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration (what :func:`upgrade` leaves).

    Hub worker processes check this instead of migrating: ``tahub serve`` migrates once
    before it starts them, so that they never race each other over a migration.
    """
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    heads = set(ScriptDirectory.from_config(cfg).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == heads
