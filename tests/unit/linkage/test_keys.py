"""Custody of the network linkage key: key files, environment secrets, key ids and rotation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.errors import ConfigError
from common.linkage.keys import (
    EnvKeyProvider,
    FileKeyProvider,
    LinkageKey,
    LinkageKeyProvider,
    generate_key_file,
    rotate_key_file,
)


def test_a_generated_key_file_is_private_hex_and_readable_by_the_provider(tmp_path: Path) -> None:
    """generate_key_file writes 64 hex digits with mode 0600, and FileKeyProvider reads the same key."""
    path = tmp_path / "linkage.key"
    key = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key.to_hex()
    assert len(key.to_hex()) == 64
    assert FileKeyProvider(path).current() == key
    assert FileKeyProvider(path).previous() is None


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A key file with any group or other permission bit is a ConfigError."""
    path = tmp_path / "linkage.key"
    generate_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError):
        FileKeyProvider(path).current()


def test_an_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    """Generating into an existing path is a ConfigError and leaves the old key."""
    path = tmp_path / "linkage.key"
    key = generate_key_file(path)
    with pytest.raises(ConfigError):
        generate_key_file(path)
    assert FileKeyProvider(path).current() == key


def test_a_malformed_key_file_is_a_config_error_without_its_content(tmp_path: Path) -> None:
    """A key file that is not 32 bytes of hex is refused, and the error does not quote it."""
    path = tmp_path / "linkage.key"
    path.write_text("not-a-key-but-secret-looking\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as caught:
        FileKeyProvider(path).current()
    assert "secret-looking" not in str(caught.value)


def test_rotation_writes_a_new_key_and_keeps_the_old_one(tmp_path: Path) -> None:
    """rotate_key_file installs a new key and keeps the previous one as <file>.previous, both 0600."""
    path = tmp_path / "linkage.key"
    old = generate_key_file(path)
    rotation = rotate_key_file(path)
    provider = FileKeyProvider(path)
    assert rotation.previous_key_id == old.key_id
    assert rotation.key_id == provider.current().key_id != old.key_id
    assert provider.previous() == old
    assert stat.S_IMODE((tmp_path / "linkage.key.previous").stat().st_mode) == 0o600
    assert not (tmp_path / "linkage.key.next").exists()


def test_rotation_can_install_a_given_key_but_not_the_current_one(tmp_path: Path) -> None:
    """A node installs a network key it received; re-installing the current key is refused."""
    path = tmp_path / "linkage.key"
    generate_key_file(path)
    received = LinkageKey.generate()
    assert rotate_key_file(path, received).key_id == received.key_id
    with pytest.raises(ConfigError):
        rotate_key_file(path, received)
    assert FileKeyProvider(path).current() == received


def test_the_environment_provider_reads_hex_secrets() -> None:
    """EnvKeyProvider reads the current and, when named, the previous key from variables."""
    current, previous = LinkageKey.generate(), LinkageKey.generate()
    environ = {"MEDFED_LINKAGE_KEY": current.to_hex(), "OLD_KEY": previous.to_hex()}
    provider = EnvKeyProvider(previous_variable="OLD_KEY", environ=environ)
    assert provider.current() == current
    assert provider.previous() == previous
    assert EnvKeyProvider(environ=environ).previous() is None


def test_a_missing_or_malformed_environment_key_is_a_config_error() -> None:
    """An unset variable, or one that is not 32 bytes of hex, is a ConfigError that does not quote it."""
    with pytest.raises(ConfigError):
        EnvKeyProvider(environ={}).current()
    with pytest.raises(ConfigError) as caught:
        EnvKeyProvider(environ={"MEDFED_LINKAGE_KEY": "abcd" * 8}).current()
    assert "abcd" not in str(caught.value)


def test_both_providers_satisfy_the_provider_protocol(tmp_path: Path) -> None:
    """FileKeyProvider and EnvKeyProvider are LinkageKeyProviders (what a KMS client implements)."""
    assert isinstance(FileKeyProvider(tmp_path / "k"), LinkageKeyProvider)
    assert isinstance(EnvKeyProvider(), LinkageKeyProvider)


def test_key_ids_are_short_stable_and_not_the_key() -> None:
    """A key id is 16 hex digits, the same for the same key, different for another, and no part of it."""
    key = LinkageKey(bytes(range(32)))
    assert key.key_id == LinkageKey(bytes(range(32))).key_id
    assert len(key.key_id) == 16
    assert key.key_id not in key.to_hex()
    assert key.key_id != LinkageKey.generate().key_id


def test_a_key_prints_as_its_id_only() -> None:
    """repr shows the key id and never the secret."""
    key = LinkageKey.generate()
    assert key.to_hex() not in repr(key)
    assert key.key_id in repr(key)


def test_a_key_must_be_32_bytes() -> None:
    """Shorter or longer secrets are a ConfigError."""
    with pytest.raises(ConfigError):
        LinkageKey(b"short")
