"""The node's settings: one object per process, read from ``MEDFED_NODE_*`` and the command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["NodeSettings", "training_threads"]

DATABASE_FILE = "node.db"
POLICY_FILE = "policy.yaml"


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
    policy_file: Path | None = Field(
        default=None,
        description="The node's policy (YAML, see deploy/policy.example.yaml); unset means <data_dir>/policy.yaml.",
    )
    signed_job_max_age_s: float = Field(
        default=24 * 3600.0,
        gt=0,
        le=30 * 24 * 3600.0,
        description="How old a researcher's signature may be when a job first reaches the node (docs/trust.md).",
    )
    signed_job_max_skew_s: float = Field(
        default=300.0, ge=0, le=3600.0, description="How far in the future a signature may be dated (clock skew)."
    )
    audit_receipt_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="How often an enrolled node sends a signed audit chain-head receipt to the coordinator.",
    )
    training_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="torch threads for a federated training job's local work (the FHIR API keeps the rest).",
    )
    auth_failure_burst: float = Field(
        default=20.0, gt=0, description="Failed bearer tokens one client address may send at once (then 429)."
    )
    auth_failure_refill_per_s: float = Field(
        default=1.0, gt=0, description="How fast a client address earns back failed attempts (per second)."
    )
    locate_burst: float = Field(default=30.0, gt=0, description="Record-locator lookups one token may make at once.")
    locate_refill_per_s: float = Field(
        default=0.5, gt=0, description="Record-locator lookups one token earns back per second."
    )
    tls_cert: Path | None = Field(default=None, description="PEM certificate (chain) to serve the API over HTTPS.")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert.")

    @model_validator(mode="after")
    def _tls_both_or_neither(self) -> NodeSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        return self

    @property
    def policy_path(self) -> Path:
        """Where the node's policy file is."""
        return self.policy_file if self.policy_file is not None else self.data_dir / POLICY_FILE

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


class _TrainingSettings(BaseSettings):
    """``MEDFED_NODE_TRAINING_THREADS`` alone: the apps that train are built without the settings object."""

    model_config = SettingsConfigDict(env_prefix="MEDFED_NODE_", extra="ignore")

    training_threads: int = Field(default=1, ge=1, le=256)


def training_threads() -> int:
    """How many torch threads a training job may use (``MEDFED_NODE_TRAINING_THREADS``, default 1).

    torch's thread pool is per process, so an unbounded training job would take every core from the
    FHIR API that shares the process; ``medfed node start`` validates the value with the other settings.
    """
    return _TrainingSettings().training_threads
