"""The hub's one settings object. Every setting is an environment variable ``TAHUB_<NAME>``.

Nothing is read at import time: ``Settings()`` reads the environment when the CLI or a test
builds one and hands it to ``create_app(settings)``. The table in ``docs/settings.md`` is
generated from the field descriptions below and a test keeps the two in step.
"""

from __future__ import annotations

import base64
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hub.errors import ConfigError, RowError

__all__ = ["Settings", "load_settings", "machine_cores", "machine_memory_share"]

MiB = 1024 * 1024


_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                         "ES384", "ES512", "EdDSA", "Ed25519"})


def machine_memory_share(parts: int) -> str:
    """``1/parts`` of the memory this process may use, in DuckDB's syntax (``6144MiB``): the
    machine's physical memory, or the cgroup's limit when it is lower (a container); at
    least 1 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return f"{max(1024, total // parts // 2**20)}MiB"


def machine_cores() -> int:
    """The cores this process may run on: its CPU affinity, or the cgroup's CPU quota when
    it is lower (a container); at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota.isdigit() and period.isdigit() and int(period) > 0:
            cores = min(cores, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


_DUCK_SIZE = r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAHUB_", extra="forbid")

    data_dir: Path = Field(
        default=Path("tahub-data"),
        description="Folder for the embedded default: SQLite metadata, extracts, staging "
        "uploads and the token-signing key.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the metadata store. Empty: SQLite file "
        "<data_dir>/tahub.db.",
    )
    storage: str = Field(
        default="",
        description="Object storage for committed extracts: `s3://<bucket>[/<prefix>]` "
        "(S3 or MinIO, see the `TAHUB_S3_*` settings; the bucket must exist), "
        "`file:///abs/path` or `memory://` (tests). Empty: the local folder "
        "<data_dir>/objects.",
    )
    s3_endpoint: str = Field(
        default="",
        description="URL of the S3-compatible server, e.g. `https://minio.internal:9000`; "
        "the scheme decides TLS. Empty: AWS S3.",
    )
    s3_public_endpoint: str = Field(
        default="",
        description="The object store's URL as connectors reach it, written into presigned "
        "upload URLs. Empty: the same as TAHUB_S3_ENDPOINT.",
    )
    s3_access_key: str = Field(default="", description="Access key of the hub's S3 user.")
    s3_secret_key: SecretStr = Field(
        default=SecretStr(""), description="Secret key of the hub's S3 user."
    )
    s3_region: str = Field(default="us-east-1", description="Region of the bucket.")
    s3_sse: str = Field(
        default="none",
        pattern=r"^(none|s3|kms:\S+)$",
        description="Server-side encryption of every object the hub writes: `none`, `s3` "
        "(keys managed by the store, SSE-S3) or `kms:<key id>` (SSE-KMS, needs https).",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Folder of local copies of committed extracts that queries read when "
        "the storage is S3 (shared safely by the hub processes of one host). Empty: "
        "<data_dir>/cache.",
    )
    cache_bytes: int = Field(
        default=20 * 1024 * MiB,
        ge=1,
        description="Size bound of TAHUB_CACHE_DIR, in bytes; the least recently used "
        "copies not in use by a query are removed first.",
    )
    link_max_tokens: int = Field(
        default=50,
        ge=2,
        description="Persons (units linked by shared identifiers across partners and "
        "datasets) with more identifiers than this are reported by `tahub admin links` as "
        "likely shared identifiers (a phone used by many); they still count as one person "
        "(docs/privacy.md).",
    )
    link_stop_list: Path | None = Field(
        default=None,
        description="File of tokens (one per line, `#` comments) that link nothing: shared "
        "identifiers that governance decided are not one person. Empty: none.",
    )
    contracts_dir: Path | None = Field(
        default=None,
        description="Folder of data contracts. Empty: the contracts shipped with tahub.",
    )
    policies_dir: Path | None = Field(
        default=None,
        description="Folder of sharing policies imported as the first version of each "
        "dataset's policy when the metadata store has none (first start); later changes go "
        "through the four-eyes review (`tahub policy propose`, `import`). Empty: the policies "
        "shipped with tahub.",
    )
    refresh_token_days: int = Field(
        default=14, ge=1, le=365,
        description="How long a person stays signed in without signing in again (refresh "
        "tokens; each use rotates it).",
    )
    oidc_issuer: str = Field(
        default="",
        description="Issuer URL of the organisation's OpenID Connect provider (Keycloak, Entra "
        "ID, Okta...); people then sign in there. Empty: the hub's own provider, local "
        "passwords only.",
    )
    oidc_client_id: str = Field(
        default="", description="The hub's client id at that provider."
    )
    oidc_client_secret: SecretStr = Field(
        default=SecretStr(""), description="The hub's client secret at that provider."
    )
    oidc_audience: str = Field(
        default="",
        description="The audience of that provider's access tokens for the hub's API (bearer "
        "tokens). Empty: TAHUB_OIDC_CLIENT_ID.",
    )
    oidc_algorithms: Annotated[list[str], NoDecode] = Field(
        default=["RS256", "PS256", "ES256", "EdDSA"],
        description="Signature algorithms accepted from that provider, comma-separated "
        "(asymmetric only).",
    )

    @field_validator("oidc_algorithms", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [a.strip() for a in value.split(",") if a.strip()]
        return value

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = sorted(set(value) - _ASYMMETRIC)  # none, HS*: a public key is no secret
        if refused or not value:
            raise ValueError(f"{', '.join(refused) or 'an empty list'} not accepted; use "
                             f"asymmetric algorithms ({', '.join(sorted(_ASYMMETRIC))})")
        return value
    oidc_jwks_uri: str = Field(
        default="", description="That provider's JWKS URL. Empty: from its discovery document."
    )
    oidc_jwks_refresh_seconds: int = Field(
        default=60, ge=0, le=86400,
        description="Least time between two fetches of the provider's keys when a token names "
        "an unknown key (a rotation).",
    )
    oidc_name: str = Field(
        default="your organisation's sign-in",
        description="The provider's name on the hub's sign-in page.",
    )
    policy_quorum: int = Field(
        default=2, ge=2, le=20,
        description="Distinct governance officers, the proposer included, who must agree "
        "before a policy change (a budget change included) takes effect.",
    )
    policy_quorum_orgs: int = Field(
        default=1, ge=1, le=20,
        description="Distinct member organisations those officers must come from (at most "
        "TAHUB_POLICY_QUORUM).",
    )
    review_claim_minutes: int = Field(
        default=30, ge=1, le=1440,
        description="How long a reviewer holds an incident they claimed from the review "
        "queue without deciding it; after that the claim expires and the incident is back in "
        "the queue for anyone (docs/osint.md#review).",
    )
    reports_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Keys that seal crowd reports (docs/osint.md#crowd-reports), "
        "comma-separated: the first seals new reports, every one opens (rotation: put a new "
        "key first, keep the old ones until their reports are purged). Make one with `tahub "
        "admin reports-key`. Empty: the public report page and API refuse reports (503 "
        "naming this setting); `tahub demo` makes one in <data_dir>/keys.",
    )
    reports_retention_days: int = Field(
        default=30, ge=0, le=3650,
        description="Days a crowd report's text is kept, sealed, after its incident was "
        "reviewed (accepted, rejected or merged); then the hub's purge (every few minutes, "
        "and `tahub admin purge-reports`) deletes it. Only the reviewed tags remain.",
    )
    reports_per_hour: int = Field(
        default=10, ge=0,
        description="Crowd reports one client address may send in an hour, counted across "
        "every hub process and replica on the metadata store (POST /v1/public/reports; a "
        "burst of this many, then an even rate; the address as for "
        "TAHUB_TOKEN_RATE_LIMIT_PER_MINUTE, stored only as a keyed hash that changes each "
        "UTC day); over it: 429 with Retry-After. 0: no limit.",
    )
    reports_max_chars: int = Field(
        default=5000, ge=100, le=100_000,
        description="Longest crowd report accepted, in characters; its request body is "
        "refused (413) before parsing when it could not fit.",
    )
    reports_proof_bits: int = Field(
        default=17, ge=4, le=30,
        description="Difficulty of the proof of work a crowd report carries: the sender's "
        "browser finds a nonce whose SHA-256 with the hub's challenge starts with this many "
        "zero bits, 2^bits hashes on average (measured in Chromium: 70,000 to 130,000 a "
        "second on a laptop core, so 17 bits take one to two seconds there, several on an "
        "older phone). Each bit doubles a sender's wait and the work of a flood.",
    )
    host: str = Field(default="127.0.0.1", description="Address `tahub serve` listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `tahub serve` listens on.")
    public_url: str = Field(
        default="",
        description="URL members reach the hub at; the token issuer. Empty: "
        "http://<host>:<port>.",
    )
    token_ttl_seconds: int = Field(
        default=900, ge=60, le=86400, description="Lifetime of access tokens, in seconds."
    )
    max_extract_bytes: int = Field(
        default=4096 * MiB, ge=1, description="Largest extract the hub accepts, in bytes."
    )
    max_extract_rows: int = Field(
        default=100_000_000, ge=1,
        description="Most rows one extract may hold (a member may have its own: `tahub "
        "admin member limits`).",
    )
    max_decoded_bytes: int = Field(
        default=64 * 1024 * MiB, ge=1,
        description="Most bytes one extract may decode to in memory, counted while its rows "
        "stream (per member: `tahub admin member limits`).",
    )
    max_decoded_ratio: int = Field(
        default=200, ge=1,
        description="Most bytes one extract may decode to per byte uploaded: a small file of "
        "millions of repeated rows (a decompression bomb) is stopped within seconds. Real "
        "extracts decode to 4-9 times their size (per member: `tahub admin member limits`).",
    )
    query_wait_seconds: int = Field(
        default=120, ge=1, le=3600,
        description="How long a query waits for an identical one of the same member that is "
        "being computed (by any process), to answer with its release for free; beyond it, "
        "503 and nothing spent.",
    )
    query_stale_seconds: int = Field(
        default=900, ge=1,
        description="A query charged this many seconds ago and still not released is taken "
        "for one whose process died: an identical query is then charged and computed again.",
    )
    audit_fold_seconds: int = Field(
        default=60, ge=1, le=86400,
        description="Identical refusals, and identical reused answers, of one actor within "
        "this many seconds are written to the audit log as one entry with a count (after the "
        "first, which is written at once), so that a burst cannot flood the log.",
    )
    duckdb_memory_limit: str = Field(
        default_factory=lambda: machine_memory_share(8),
        pattern=_DUCK_SIZE,
        description="Memory one DuckDB connection of the hub may use (a query, the check of "
        "an extract at commit, the resolution of persons), in DuckDB's syntax: `2GB`, "
        "`512MiB`. Default: an eighth of the machine's memory (of the container's limit, "
        "when it has one), at least 1 GiB: room for two hub processes each committing or "
        "querying, and the rest of the machine. Beyond it, DuckDB spills to disk under "
        "`TAHUB_DUCKDB_TEMP_DIR`; work that does not fit even so is refused with 507 "
        "`out_of_capacity` naming this setting. A commit holds the extract's checked rows "
        "and sorts only narrow (row, unit) pairs, so its peak memory is this limit plus a "
        "few hundred MB of Arrow batches, whatever the extract's size (docs/production.md).",
    )
    duckdb_threads: int = Field(
        default_factory=machine_cores, ge=1, le=256,
        description="Threads one DuckDB connection of the hub may use. Default: the cores "
        "this process may run on (the container's CPU quota, when it has one).",
    )
    duckdb_temp_dir: Path | None = Field(
        default=None,
        description="Folder where DuckDB spills what does not fit "
        "`TAHUB_DUCKDB_MEMORY_LIMIT` (each connection spills to its own folder in it, "
        "removed when it closes). Empty: <data_dir>/tmp, and for the check of an extract at "
        "commit the upload's work folder under <data_dir>/staging. Put it on a fast local "
        "disk.",
    )
    duckdb_max_temp_size: str | None = Field(
        default=None,
        pattern=_DUCK_SIZE,
        description="Disk one DuckDB connection may spill to, in DuckDB's syntax (`100GB`). "
        "Empty: 90% of the free space of the spill folder's disk when the connection "
        "opens (DuckDB's default). Work that needs more is refused with 507 "
        "`out_of_capacity` naming this setting. A commit spills at most about the size of "
        "its extract decoded (its checked rows), plus its (row, unit) pairs.",
    )
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="Where queries run: `duckdb` (embedded, the default: one node) or "
        "`spark` (an Apache Spark cluster, for pooled data larger than one node: set "
        "`TAHUB_SPARK_REMOTE` or `TAHUB_SPARK_MASTER`, and `TAHUB_SPARK_SHARED_DIR`). The "
        "same plans, the same exact aggregates before noise; noise is always added by the "
        "hub (docs/production.md, \"Apache Spark\").",
    )
    spark_remote: str | None = Field(
        default=None,
        pattern=r"^sc://[^\s]+$",
        description="The Spark Connect server queries run on when `TAHUB_ENGINE=spark`, "
        "`sc://host:15002` (Spark Connect's URL syntax: `sc://host:port/;token=...;"
        "use_ssl=true`). The hub then runs no JVM of its own.",
    )
    spark_master: str | None = Field(
        default=None,
        pattern=r"^(spark://|local\b|yarn$|k8s://)[^\s]*$",
        description="Instead of `TAHUB_SPARK_REMOTE`: a Spark master URL "
        "(`spark://host:7077`, `yarn`, `k8s://...`); the hub process is then the Spark "
        "driver (it needs Java 17 or newer).",
    )
    spark_shared_dir: Path | None = Field(
        default=None,
        description="With `TAHUB_ENGINE=spark`: a folder that the hub processes and every "
        "Spark node mount at the same path (NFS, CephFS, a shared volume). The cluster "
        "checks and writes commits in work folders there, and reads and writes contribution "
        "bounding's cut files and the persons map under it. It reads the extracts from "
        "`TAHUB_STORAGE`: a `file://` folder on this shared folder, or S3 through Hadoop's "
        "S3A connector (`TAHUB_SPARK_S3_CREDENTIALS`).",
    )
    spark_s3_credentials: Literal["hub", "cluster"] = Field(
        default="hub",
        description="With `TAHUB_ENGINE=spark` and `s3://` storage, whose credentials the "
        "cluster reads the bucket with: `hub` (the hub's own `TAHUB_S3_ACCESS_KEY` and "
        "`TAHUB_S3_SECRET_KEY`, passed in the Spark session's settings, which Spark "
        "redacts) or `cluster` (those its operators configured, e.g. an instance role or "
        "a read-only user: the hub passes only the endpoint and region).",
    )
    spark_query_timeout: int = Field(
        default=600, ge=1, le=86400,
        description="Seconds a query's Spark jobs may run; beyond it they are cancelled on "
        "the cluster and the query answers 503 (its charge is recorded as spent without a "
        "release, as for any query that fails after its charge).",
    )
    chunk_bytes: int = Field(
        default=8 * MiB,
        ge=64 * 1024,
        le=256 * MiB,
        description="Largest upload chunk the hub accepts in one request, in bytes.",
    )
    max_json_bytes: int = Field(
        default=MiB,
        ge=1024,
        description="Largest request body the hub accepts on every route but upload chunks "
        "(JSON bodies), in bytes; larger ones are refused with 413 before parsing.",
    )
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="Requests a minute each member (organisation) may make to routes other "
        "than queries and uploads, per hub process (a burst of this many, then an even "
        "rate); over it: 429 with Retry-After. 0: no limit.",
    )
    query_rate_limit_per_minute: int = Field(
        default=60,
        ge=0,
        description="Requests a minute each member may make to POST /v1/queries and "
        "/v1/queries/estimate, per hub process. 0: no limit.",
    )
    upload_rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="Requests a minute each member may make to /v1/uploads (chunks "
        "included), per hub process. 0: no limit.",
    )
    token_rate_limit_per_minute: int = Field(
        default=60,
        ge=0,
        description="Requests a minute to POST /oauth/token from one client address, per "
        "hub process (behind a proxy: the X-Forwarded-For address, trusted from the "
        "addresses in uvicorn's FORWARDED_ALLOW_IPS, default 127.0.0.1). "
        "0: no limit.",
    )
    upload_ttl_hours: int = Field(
        default=24,
        ge=1,
        description="Hours an unfinished upload can be resumed before it is cleaned up.",
    )
    sweep_interval_minutes: int = Field(
        default=60,
        ge=0,
        description="Minutes between sweeps of expired uploads (and their multipart parts in "
        "S3), orphan objects and stale cache copies while the hub runs; 0: only at start.",
    )
    log_level: str = Field(default="INFO", description="Log level (DEBUG, INFO, WARNING...).")
    log_json: bool = Field(
        default=False, description="Write logs as JSON lines instead of console text."
    )
    settings_file: Path | None = Field(
        default=None,
        description="A TOML file of these settings: the names below without `TAHUB_`, in "
        "lower case (`storage = \"s3://tahub\"`, `workers = 4`). Environment variables "
        "override it.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Hub processes `tahub serve` starts on the one port (`--workers`); "
        "migrations run once before they start.",
    )
    shutdown_grace_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="On SIGTERM, how long in-flight requests (an upload chunk, a query) "
        "may take to finish before they are cancelled.",
    )
    signing_key_file: Path | None = Field(
        default=None,
        description="PEM file of the Ed25519 private key that signs access tokens, shared "
        "by every hub process and replica; later PEM blocks in it only verify (key "
        "rotation, docs/operations.md). Empty: a key made in <data_dir>/keys.",
    )
    collect: bool = Field(
        default=False,
        description="Fetch the open sources (news feeds, folders: `tahub sources`) on their "
        "schedule inside the hub process (every worker may poll: each due source is "
        "claimed by one). false: only `tahub collect` and the fetch route fetch "
        "(docs/osint.md).",
    )
    collect_poll_seconds: int = Field(
        default=60, ge=1, le=3600,
        description="Seconds between two looks for sources due to be fetched.",
    )
    fetch_host_interval_seconds: float = Field(
        default=5.0, ge=0, le=3600,
        description="Least seconds between two requests to one host (a feed, its article "
        "pages), per hub process: a polite rate.",
    )
    fetch_timeout_seconds: float = Field(
        default=20.0, gt=0, le=600,
        description="Longest one request to a source may take, connection and whole body "
        "included; a slower answer is a failed fetch (or a skipped article).",
    )
    fetch_max_bytes: int = Field(
        default=5 * MiB, ge=1024,
        description="Largest body of one answer of a source (a feed, an article page) as "
        "sent, in bytes; reading stops at the limit and the answer is refused.",
    )
    fetch_max_decoded_bytes: int = Field(
        default=20 * MiB, ge=1024,
        description="Largest body of one answer once decompressed (gzip, deflate), in bytes, "
        "and largest file of a folder source: a decompression bomb is refused.",
    )
    fetch_max_entries: int = Field(
        default=200, ge=1, le=100_000,
        description="Most entries (feed items, folder records) read in one fetch of a "
        "source; the rest are recorded as skipped.",
    )
    fetch_short_text: int = Field(
        default=600, ge=0,
        description="A feed entry whose summary or content is shorter than this many "
        "characters has its article page fetched (same host only) and its text extracted.",
    )
    fetch_user_agent: str = Field(
        default="",
        description="User-Agent of the hub's requests to sources. Empty: `tahub/<version> "
        "(+<TAHUB_PUBLIC_URL>)`; name a contact for the sites' operators.",
    )

    @field_validator("reports_keys")
    @classmethod
    def _reports_keys_are_keys(cls, value: SecretStr) -> SecretStr:
        for n, key in enumerate(_split_keys(value.get_secret_value()), 1):
            problem = _key_problem(key)
            if problem:
                raise ValueError(f"key {n} {problem} (make one with `tahub admin reports-key`)")
        return value

    def reports_key_list(self) -> list[str]:
        """The keys of ``reports_keys`` (empty when unset): the first seals."""
        return _split_keys(self.reports_keys.get_secret_value())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then ``TAHUB_*`` variables, then the settings file, then defaults."""
        path = init_settings().get("settings_file") or env_settings().get("settings_file")
        if not path:
            return init_settings, env_settings, dotenv_settings, file_secret_settings
        toml = _toml_source(settings_cls, Path(path))
        return init_settings, env_settings, dotenv_settings, toml, file_secret_settings

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'tahub.db').resolve()}"
        if not self.storage:
            self.storage = (self.data_dir / "objects").resolve().as_uri()
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        self.public_url = self.public_url.rstrip("/")
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("TAHUB_OIDC_ISSUER needs TAHUB_OIDC_CLIENT_ID")
        if self.policy_quorum_orgs > self.policy_quorum:
            raise ValueError("TAHUB_POLICY_QUORUM_ORGS cannot exceed TAHUB_POLICY_QUORUM")
        if self.engine == "spark":
            self._check_spark()
        return self

    def _check_spark(self) -> None:
        if (self.spark_remote is None) == (self.spark_master is None):
            raise ValueError("TAHUB_ENGINE=spark needs one of TAHUB_SPARK_REMOTE (sc://host:port) "
                             "or TAHUB_SPARK_MASTER (spark://host:port)")
        if self.spark_shared_dir is None:
            raise ValueError("TAHUB_ENGINE=spark needs TAHUB_SPARK_SHARED_DIR, a folder the hub "
                             "and every Spark node mount at the same path")
        if not self.storage.startswith(("file://", "s3://")):
            raise ValueError("TAHUB_ENGINE=spark reads the extracts from a folder the cluster "
                             "shares or from S3: TAHUB_STORAGE must be file:///<a folder in "
                             "TAHUB_SPARK_SHARED_DIR> or s3://<bucket>[/<prefix>]")

    @property
    def work_dir(self) -> Path:
        """Where the cut files and the persons map are written: the folder shared with the
        Spark cluster when there is one, else the data folder."""
        if self.engine == "spark" and self.spark_shared_dir is not None:
            return self.spark_shared_dir
        return self.data_dir

    def link_stop_tokens(self) -> frozenset[str]:
        """The tokens of ``link_stop_list`` (none when unset)."""
        if self.link_stop_list is None:
            return frozenset()
        try:
            lines = self.link_stop_list.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read the link stop list: {exc.strerror}",
                              field="TAHUB_LINK_STOP_LIST") from None
        return frozenset(t for line in lines if (t := line.split("#", 1)[0].strip()))

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def extract_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"


def _split_keys(value: str) -> list[str]:
    return [k.strip() for k in value.split(",") if k.strip()]


def _key_problem(key: str) -> str | None:
    """Why ``key`` cannot seal reports (None: it can). A placeholder (a key of few distinct
    bytes, such as 32 zeros or a repeated pattern) is refused like a malformed one: a random
    key has about 30 distinct bytes of 32, fewer than 16 happens about never."""
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32 or len(key) != 44:
        return "is not 32 bytes in URL-safe base64"
    if len(set(raw)) < 16:
        return "is a placeholder, not a random key"
    return None


_FILE_FIELD = "TAHUB_SETTINGS_FILE"


def _toml_source(settings_cls: type[BaseSettings], path: Path) -> TomlConfigSettingsSource:
    """The settings file as a source; a missing or malformed file is a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"settings file {path} does not exist", field=_FILE_FIELD)
    try:
        source = TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}",
                          field=_FILE_FIELD) from None
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path} ({exc.strerror or exc})",
                          field=_FILE_FIELD) from None
    if "settings_file" in source.toml_data:
        raise ConfigError(f"settings file {path}: settings_file cannot be set inside a "
                          "settings file", field=_FILE_FIELD)
    return source


def _file_line(path: Path, key: str) -> int | None:
    """The line of ``path`` that sets ``key`` (for error messages), if there is one."""
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return next((n for n, line in enumerate(lines, 1) if pattern.match(line)), None)


def load_settings(**overrides: Any) -> Settings:
    """Settings from ``overrides`` (None values ignored), ``TAHUB_*`` variables and the
    settings file, in that order of precedence.

    A bad value is a :class:`~hub.errors.ConfigError` listing every problem, each named by
    its environment variable, or by the settings file, line and key it came from.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    env = {k.upper() for k in os.environ}
    path_value = given.get("settings_file") or next(
        (v for k, v in os.environ.items() if k.upper() == _FILE_FIELD), None
    )
    path = Path(path_value) if path_value else None
    file_keys = set(_toml_source(Settings, path).toml_data) if path is not None else set()
    rows = []
    for e in errors:
        key = ".".join(map(str, e["loc"]))
        variable = f"TAHUB_{key.upper()}"
        if path is not None and key in file_keys and key not in given and variable not in env:
            line = _file_line(path, key)
            reason = e["msg"]
            if e["type"] == "extra_forbidden":
                reason = ("unknown setting (keys are the setting names without TAHUB_, in "
                          "lower case; docs/settings.md)")
            where = f"{path}:{line}" if line is not None else str(path)
            rows.append(RowError(field=f"{where}: {key}", reason=reason))
        else:
            rows.append(RowError(field=variable, reason=e["msg"]))
    raise ConfigError("invalid settings", errors=rows)
