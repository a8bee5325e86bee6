"""The node's settings: one object per process, read from ``MEDFED_NODE_*`` and the command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["NodeSettings"]

DATABASE_FILE = "node.db"


class NodeSettings(BaseSettings):
    """Everything a node process needs to know; tests build it directly."""

    model_config = SettingsConfigDict(env_prefix="MEDFED_NODE_", extra="forbid")

    data_dir: Path = Field(description="Where the node keeps its database file, keys and logs.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means a SQLite file in the data directory.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str | None = Field(
        default=None,
        description="The FHIR base URL clients use (behind a proxy); unset means taken from the request.",
    )
    max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_bundle_entries: int = Field(default=20_000, gt=0)
    default_page_size: int = Field(default=50, gt=0)
    max_page_size: int = Field(default=1_000, gt=0)
    log_level: str = "INFO"
    coordinator_proxy: str | None = Field(
        default=None,
        description="HTTP(S) proxy for the channel to the coordinator; unset means HTTPS_PROXY/NO_PROXY apply.",
    )

    @field_validator("database_url")
    @classmethod
    def _empty_url_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL the store connects to."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / DATABASE_FILE).resolve()}"
