"""The coordinator's settings: one object per process, read from ``MEDFED_COORDINATOR_*`` and the command line."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DATABASE_FILE", "CoordinatorSettings"]

DATABASE_FILE = "coordinator.db"


class CoordinatorSettings(BaseSettings):
    """Everything a coordinator process needs to know; tests build it directly."""

    model_config = SettingsConfigDict(env_prefix="MEDFED_COORDINATOR_", extra="forbid")

    data_dir: Path = Field(description="Where the coordinator keeps its database file, keys and logs.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means a SQLite file in the data directory.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)
    public_url: str | None = Field(
        default=None,
        description="The URL nodes dial (behind a proxy or NAT); unset means https://host:port.",
    )
    log_level: str = "INFO"
    heartbeat_interval_s: float = Field(default=10.0, gt=0, description="How often nodes say they are alive.")
    node_offline_after_s: float = Field(
        default=30.0, gt=0, description="A node not heard from for this long is shown offline."
    )
    enrol_code_ttl_s: float = Field(default=86_400.0, gt=0, description="How long a new enrolment code is valid.")
    enrol_max_failures: int = Field(
        default=10, gt=0, description="Failed enrolment attempts one client address may make per window."
    )
    enrol_failure_window_s: float = Field(default=600.0, gt=0, description="The window of enrol_max_failures.")
    advertise: bool = Field(default=True, description="Announce the coordinator on the LAN (zeroconf) while serving.")
    advertise_addresses: list[str] = Field(
        default_factory=list,
        description="IP addresses announced on the LAN (also the interfaces announced on); "
        "empty means the listening host, which must then be a specific IP address.",
    )
    max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    checkpoint_budget_bytes: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        description="Bytes of per-round models one learning job keeps; beyond, every k-th round and the last.",
    )
    auth_failure_burst: float = Field(
        default=20.0, gt=0, description="Failed bearer tokens or console logins one client address may send at once."
    )
    auth_failure_refill_per_s: float = Field(
        default=1.0, gt=0, description="How fast a client address earns back failed attempts (per second)."
    )

    @field_validator("advertise_addresses")
    @classmethod
    def _ip_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            ipaddress.ip_address(address)  # ValueError names the field, not the value, in the CLI
        return value

    @field_validator("database_url", "public_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("public_url must be an http(s) URL")
        return None if value is None else value.rstrip("/")

    @model_validator(mode="after")
    def _offline_after_heartbeats(self) -> CoordinatorSettings:
        if self.node_offline_after_s <= self.heartbeat_interval_s:
            raise ValueError("node_offline_after_s must be longer than heartbeat_interval_s")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL the store connects to."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / DATABASE_FILE).resolve()}"

    @property
    def announced_addresses(self) -> list[str]:
        """The addresses to announce on the LAN: ``advertise_addresses``, else ``host`` if it is one specific IP."""
        if self.advertise_addresses:
            return list(self.advertise_addresses)
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            return []
        return [] if address.is_unspecified else [str(address)]

    @property
    def public_base_url(self) -> str:
        """The URL nodes dial: ``public_url`` when set, else ``https://host:port``."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"
