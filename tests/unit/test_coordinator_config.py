"""CoordinatorSettings: defaults, the environment prefix, derived URLs and refused values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from coordinator.config import CoordinatorSettings


def test_defaults(tmp_path: Path) -> None:
    """Unset, it listens on 127.0.0.1:8443, keeps a SQLite file in its data dir, and uses 10 s/30 s/24 h timings."""
    settings = CoordinatorSettings(data_dir=tmp_path)
    assert (settings.host, settings.port) == ("127.0.0.1", 8443)
    assert settings.sqlalchemy_url == f"sqlite:///{(tmp_path / 'coordinator.db').resolve()}"
    assert settings.public_base_url == "https://127.0.0.1:8443"
    assert (settings.heartbeat_interval_s, settings.node_offline_after_s, settings.enrol_code_ttl_s) == (10, 30, 86_400)
    assert settings.max_request_bytes > 0


def test_environment_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MEDFED_COORDINATOR_* variables set the fields; an empty database URL means unset."""
    monkeypatch.setenv("MEDFED_COORDINATOR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEDFED_COORDINATOR_PORT", "9000")
    monkeypatch.setenv("MEDFED_COORDINATOR_DATABASE_URL", "")
    monkeypatch.setenv("MEDFED_COORDINATOR_PUBLIC_URL", "https://coord.example.org/")
    settings = CoordinatorSettings()
    assert (settings.data_dir, settings.port, settings.database_url) == (tmp_path, 9000, None)
    assert settings.public_base_url == "https://coord.example.org"


def test_public_url_defaults_to_host_and_port(tmp_path: Path) -> None:
    """Without public_url nodes dial https://host:port, with IPv6 hosts in brackets."""
    assert CoordinatorSettings(data_dir=tmp_path, host="::1", port=1).public_base_url == "https://[::1]:1"
    assert CoordinatorSettings(data_dir=tmp_path, host="coord.lan").public_base_url == "https://coord.lan:8443"


@pytest.mark.parametrize(
    "bad",
    [
        {"unknown_field": 1},
        {"port": 70_000},
        {"public_url": "coord.example.org"},
        {"heartbeat_interval_s": 0},
        {"heartbeat_interval_s": 30, "node_offline_after_s": 30},
        {"max_request_bytes": 0},
    ],
)
def test_bad_values_are_refused(tmp_path: Path, bad: dict[str, object]) -> None:
    """Unknown fields, out-of-range ports and timings, and URLs without a scheme do not validate."""
    with pytest.raises(ValidationError):
        CoordinatorSettings(data_dir=tmp_path, **bad)  # type: ignore[arg-type]
