"""The hub's one settings object. Every setting is an environment variable ``TAHUB_<NAME>``.

Nothing is read at import time: ``Settings()`` reads the environment when the CLI or a test
builds one and hands it to ``create_app(settings)``. The table in ``docs/settings.md`` is
generated from the field descriptions below and a test keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]

MiB = 1024 * 1024


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
        description="Object storage for committed extracts. Empty: the local folder "
        "<data_dir>/objects (file:// URLs are accepted too).",
    )
    contracts_dir: Path | None = Field(
        default=None,
        description="Folder of data contracts. Empty: the contracts shipped with tahub.",
    )
    policies_dir: Path | None = Field(
        default=None,
        description="Folder of sharing policies, reloaded when a file changes. Empty: the "
        "policies shipped with tahub.",
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
    chunk_bytes: int = Field(
        default=8 * MiB,
        ge=64 * 1024,
        le=256 * MiB,
        description="Largest upload chunk the hub accepts in one request, in bytes.",
    )
    upload_ttl_hours: int = Field(
        default=24,
        ge=1,
        description="Hours an unfinished upload can be resumed before it is cleaned up.",
    )
    log_level: str = Field(default="INFO", description="Log level (DEBUG, INFO, WARNING...).")
    log_json: bool = Field(
        default=False, description="Write logs as JSON lines instead of console text."
    )

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'tahub.db').resolve()}"
        if not self.storage:
            self.storage = (self.data_dir / "objects").resolve().as_uri()
        if not self.public_url:
            self.public_url = f"http://{self.host}:{self.port}"
        self.public_url = self.public_url.rstrip("/")
        return self

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"
