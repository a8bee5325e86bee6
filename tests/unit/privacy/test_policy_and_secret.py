"""The node's disclosure policy (validated configuration) and its disclosure secret on disk."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.errors import ConfigError
from common.privacy import DisclosurePolicy, DpPolicy
from node.config import NodeSettings
from node.privacy.secret import DISCLOSURE_KEY_FILE, ensure_disclosure_secret, load_disclosure_secret
from node.runtime import init_node


def test_the_default_policy_is_min_cell_5_with_cell_key_noise_and_no_dp() -> None:
    """Defaults: k = 5, secondary suppression, cell-key noise up to 5, margins published, DP off."""
    policy = DisclosurePolicy()
    assert (policy.enabled, policy.min_cell, policy.cell_key, policy.max_noise, policy.dp) == (True, 5, True, 5, None)
    assert policy.p_table is not None
    assert policy.p_table.period == 11
    assert DisclosurePolicy.disabled().p_table is None


def test_a_policy_reads_from_configuration_and_round_trips() -> None:
    """from_mapping accepts the documented keys, including a DP section, and to_mapping gives them back."""
    data = {
        "min_cell": 10,
        "max_noise": 3,
        "km_time_bin": 7,
        "dp": {"mechanism": "gaussian", "epsilon": 0.5, "delta": 1e-6},
    }
    policy = DisclosurePolicy.from_mapping(data)
    assert policy.min_cell == 10
    assert policy.dp == DpPolicy("gaussian", 0.5, 1e-6)
    assert DisclosurePolicy.from_mapping(policy.to_mapping()) == policy


@pytest.mark.parametrize(
    "data",
    [
        {"min_cel": 10},
        {"min_cell": 0},
        {"min_cell": 5.5},
        {"min_cell": True},
        {"max_noise": 0},
        {"km_time_bin": 0},
        {"quantile_precision": float("inf")},
        {"cell_key": "yes"},
        {"dp": {"epsilon": -1}},
        {"dp": {"epsilon": 1, "sensitivity": 2}},
    ],
)
def test_a_wrong_policy_is_a_configuration_error(data: dict[str, object]) -> None:
    """Unknown keys and out-of-range values are refused, so a typo never leaves a weaker default in force."""
    with pytest.raises(ConfigError):
        DisclosurePolicy.from_mapping(data)


def test_the_disclosure_secret_is_written_once_with_mode_0600(tmp_path: Path) -> None:
    """ensure_disclosure_secret creates a 0600 file once; later calls keep it; the loader reads 32 bytes."""
    assert ensure_disclosure_secret(tmp_path) is True
    path = tmp_path / DISCLOSURE_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = load_disclosure_secret(tmp_path)
    assert len(secret) == 32
    assert ensure_disclosure_secret(tmp_path) is False
    assert load_disclosure_secret(tmp_path) == secret


def test_a_readable_or_damaged_secret_file_is_refused(tmp_path: Path) -> None:
    """A secret others can read, or that is not base64url of 32 bytes, is a configuration error."""
    ensure_disclosure_secret(tmp_path)
    path = tmp_path / DISCLOSURE_KEY_FILE
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError):
        load_disclosure_secret(tmp_path)
    os.chmod(path, 0o600)
    path.write_text("not base64 !\n")
    with pytest.raises(ConfigError):
        load_disclosure_secret(tmp_path)
    path.write_text("c2hvcnQ\n")
    with pytest.raises(ConfigError):
        load_disclosure_secret(tmp_path)


def test_node_init_creates_the_disclosure_secret_and_keeps_it(tmp_path: Path) -> None:
    """medfed node init writes disclosure.key next to the database; a second init leaves it unchanged."""
    settings = NodeSettings(data_dir=tmp_path / "node")
    engine, _ = init_node(settings)
    engine.dispose()
    secret = load_disclosure_secret(settings.data_dir)
    engine, _ = init_node(settings)
    engine.dispose()
    assert load_disclosure_secret(settings.data_dir) == secret
