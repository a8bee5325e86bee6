"""Custody of the network linkage key: held by nodes only, behind an interface a KMS can implement.

Every node of a network computes its tokens under one shared secret, the *network linkage key*, so that
the same person gives the same tokens at every hospital. Whoever holds it can test guessed
demographics against tokens, so it lives only at nodes: the coordinator never receives it (it
re-keys what nodes publish with its own secret, :mod:`common.linkage.rekey`), and it crosses the
network only sealed to one node's key (:mod:`common.crypto.sealing`).

Nodes read it through :class:`LinkageKeyProvider`, two methods a KMS or HSM client can implement:
:class:`FileKeyProvider` (a 0600 file holding 32 random bytes as hex, written and read with the
:mod:`common.crypto.keys` file recipes) and :class:`EnvKeyProvider` (a hex secret in an environment
variable, as container platforms inject secrets).

A key is named by its **key id**, a short HKDF output of the key (never the key or a plain hash of
it), so tokens, index entries and logs can say which key they were made under. Rotation
(:func:`rotate_key_file`) writes a new key and keeps the old one beside it as ``<file>.previous``, so
a node can withdraw what it published under the old key after republishing under the new one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from common.crypto.kdf import constant_time_equal, derive_key
from common.crypto.keys import load_private_key_pem, save_private_key
from common.errors import ConfigError

__all__ = [
    "DEFAULT_ENV_VARIABLE",
    "KEY_LENGTH",
    "EnvKeyProvider",
    "FileKeyProvider",
    "KeyRotation",
    "LinkageKey",
    "LinkageKeyProvider",
    "generate_key_file",
    "rotate_key_file",
    "write_key_file",
]

#: Bytes of secret in a network linkage key.
KEY_LENGTH = 32
#: The environment variable :class:`EnvKeyProvider` reads unless told otherwise.
DEFAULT_ENV_VARIABLE = "MEDFED_LINKAGE_KEY"
_KEY_ID_INFO = b"medfed/linkage/key-id/v1"
_PREVIOUS_SUFFIX = ".previous"
_STAGED_SUFFIX = ".next"


class LinkageKey:
    """A network linkage key: 32 secret bytes and their public key id. Prints as its key id only."""

    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: bytes) -> None:
        """Wrap 32 secret bytes; anything else is a ConfigError (keys come from operator files)."""
        if not isinstance(secret, bytes) or len(secret) != KEY_LENGTH:
            raise ConfigError(detail=f"a linkage key is {KEY_LENGTH} bytes")
        self._secret = secret
        self.key_id: str = derive_key(secret, info=_KEY_ID_INFO, length=8).hex()

    @classmethod
    def generate(cls) -> LinkageKey:
        """A new random key from the operating system's CSPRNG."""
        return cls(secrets.token_bytes(KEY_LENGTH))

    @classmethod
    def from_hex(cls, text: str) -> LinkageKey:
        """The key written as 64 hex digits (surrounding whitespace ignored); ConfigError otherwise."""
        try:
            secret = bytes.fromhex(text.strip())
        except ValueError:
            raise ConfigError(detail="the linkage key is not hex text") from None
        return cls(secret)

    @property
    def secret(self) -> bytes:
        """The secret bytes (for the token recipe; never log or send them)."""
        return self._secret

    def to_hex(self) -> str:
        """The secret as 64 hex digits (for writing the key file)."""
        return self._secret.hex()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LinkageKey):
            return NotImplemented
        return constant_time_equal(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash((LinkageKey, self.key_id))

    def __repr__(self) -> str:
        return f"LinkageKey(key_id={self.key_id!r})"


@runtime_checkable
class LinkageKeyProvider(Protocol):
    """Where a node gets the network linkage key: a file, an environment secret, a KMS."""

    def current(self) -> LinkageKey:
        """The key to compute tokens with now; ConfigError when it is not available."""
        ...

    def previous(self) -> LinkageKey | None:
        """The key that :meth:`current` replaced in the last rotation, while it is still kept."""
        ...


def _previous_path(path: Path) -> Path:
    return path.with_name(path.name + _PREVIOUS_SUFFIX)


def _read_key_file(path: Path) -> LinkageKey:
    data = load_private_key_pem(path)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(detail=f"the linkage key file {path} is not hex text") from None
    try:
        return LinkageKey.from_hex(text)
    except ConfigError:
        raise ConfigError(detail=f"the linkage key file {path} does not hold {KEY_LENGTH} bytes as hex") from None


@dataclass(frozen=True, slots=True)
class FileKeyProvider:
    """The key in a file of 64 hex digits, mode 0600 (anything looser is refused); read on every call."""

    path: Path

    def current(self) -> LinkageKey:
        """The key in :attr:`path`."""
        return _read_key_file(Path(self.path))

    def previous(self) -> LinkageKey | None:
        """The key in ``<path>.previous``, if a rotation left one."""
        previous = _previous_path(Path(self.path))
        return _read_key_file(previous) if previous.exists() else None


@dataclass(frozen=True, slots=True)
class EnvKeyProvider:
    """The key as 64 hex digits in an environment variable (``MEDFED_LINKAGE_KEY`` by default).

    ``previous_variable`` names an optional second variable for the key being rotated out.
    """

    variable: str = DEFAULT_ENV_VARIABLE
    previous_variable: str | None = None
    environ: Mapping[str, str] | None = None

    def _read(self, variable: str) -> LinkageKey | None:
        environ = os.environ if self.environ is None else self.environ
        text = environ.get(variable)
        if not text:
            return None
        try:
            return LinkageKey.from_hex(text)
        except ConfigError:
            raise ConfigError(detail=f"{variable} does not hold {KEY_LENGTH} bytes as hex") from None

    def current(self) -> LinkageKey:
        """The key in :attr:`variable`; ConfigError when it is unset or malformed."""
        key = self._read(self.variable)
        if key is None:
            raise ConfigError(detail=f"the linkage key variable {self.variable} is not set")
        return key

    def previous(self) -> LinkageKey | None:
        """The key in :attr:`previous_variable`, when one is named and set."""
        return self._read(self.previous_variable) if self.previous_variable else None


def write_key_file(path: Path, key: LinkageKey) -> None:
    """Write ``key`` to a new 0600 file (atomically; ConfigError if ``path`` exists)."""
    save_private_key(Path(path), (key.to_hex() + "\n").encode("ascii"))


def generate_key_file(path: Path) -> LinkageKey:
    """Create a new network linkage key in a new 0600 file at ``path`` and return it."""
    key = LinkageKey.generate()
    write_key_file(path, key)
    return key


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """What a rotation did: the key ids before and after."""

    previous_key_id: str
    key_id: str


def rotate_key_file(path: Path, new_key: LinkageKey | None = None) -> KeyRotation:
    """Replace the key in ``path`` with ``new_key`` (a new random one by default), keeping the old one.

    The new key is first written beside the old one (``<path>.next``, the atomic 0600 recipe of a new
    key file); then the current key moves to ``<path>.previous`` (replacing an older previous key) and
    the new one takes its place, so ``path`` never holds a partial key. ``new_key`` is how a node
    installs a network key that another node generated and sealed to it.
    """
    path = Path(path)
    old = _read_key_file(path)
    new = new_key if new_key is not None else LinkageKey.generate()
    if new == old:
        raise ConfigError(detail="the new linkage key is the current one")
    staged = path.with_name(path.name + _STAGED_SUFFIX)
    staged.unlink(missing_ok=True)  # left by a rotation that was interrupted before its swap
    write_key_file(staged, new)
    os.replace(path, _previous_path(path))
    os.replace(staged, path)
    return KeyRotation(previous_key_id=old.key_id, key_id=new.key_id)
