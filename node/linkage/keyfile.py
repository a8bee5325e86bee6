"""The node's copy of the network linkage key: ``<data dir>/linkage/network.key`` (mode 0600).

Every node of a network must hold the same key (tokens of two keys never match), so it is created
once — by the network operator, or at the first node with ``medfed node linkage-key init`` — and
handed to every other node as a key file over a channel the operator trusts, where ``medfed node
linkage-key import FILE`` installs it. The coordinator never receives it.

Rotation (``medfed node linkage-key rotate --from FILE``, at every node, with the operator's new key;
without ``--from`` a new random key, for a single-node network or the first node) keeps the old key
as ``network.key.previous`` and queues every patient, so the publisher republishes each record under
the new key (the coordinator replaces a reference's tokens on publication, so nothing is left under
the old key once the queue is drained). Lookups between nodes on different keys find nothing until
all have rotated: rotate the whole network together.

A node can also take its key from the environment (``MEDFED_LINKAGE_KEY``, :class:`EnvKeyProvider`),
or from a KMS by implementing :class:`~common.linkage.keys.LinkageKeyProvider`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from common.crypto import load_private_key_pem
from common.errors import ConfigError, ErrorCode
from common.linkage.keys import (
    DEFAULT_ENV_VARIABLE,
    EnvKeyProvider,
    FileKeyProvider,
    KeyRotation,
    LinkageKey,
    LinkageKeyProvider,
    generate_key_file,
    rotate_key_file,
    write_key_file,
)

__all__ = [
    "KEY_DIR",
    "KEY_FILE",
    "DataDirKeyProvider",
    "import_key",
    "init_key",
    "key_path",
    "key_provider",
    "read_key_file",
    "rotate_key",
]

KEY_DIR = "linkage"
KEY_FILE = "network.key"


def key_path(data_dir: Path) -> Path:
    """Where the node's linkage key file lives."""
    return Path(data_dir) / KEY_DIR / KEY_FILE


def _key_dir(data_dir: Path) -> Path:
    directory = Path(data_dir) / KEY_DIR
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(detail=f"cannot create {directory} ({type(exc).__name__})") from exc
    return directory


@dataclass(frozen=True, slots=True)
class DataDirKeyProvider:
    """The node's key, looked up on every call: ``MEDFED_LINKAGE_KEY`` when set, else the key file.

    Looked up each time so that a key installed (or rotated) while the node runs is used at once;
    ConfigError(LINKAGE_NOT_CONFIGURED) while there is none.
    """

    data_dir: Path

    def _provider(self) -> LinkageKeyProvider:
        if os.environ.get(DEFAULT_ENV_VARIABLE):
            return EnvKeyProvider()
        path = key_path(self.data_dir)
        if not path.exists():
            raise ConfigError(ErrorCode.LINKAGE_NOT_CONFIGURED, detail="the node has no linkage key")
        return FileKeyProvider(path)

    def current(self) -> LinkageKey:
        """The key to compute tokens with now."""
        return self._provider().current()

    def previous(self) -> LinkageKey | None:
        """The key the last rotation replaced, while it is kept."""
        return self._provider().previous()


def key_provider(data_dir: Path) -> DataDirKeyProvider:
    """The node's key provider (see :class:`DataDirKeyProvider`)."""
    return DataDirKeyProvider(Path(data_dir))


def read_key_file(path: Path) -> LinkageKey:
    """A key handed out by the network operator (64 hex digits; the file must be readable by its owner only)."""
    data = load_private_key_pem(Path(path))
    try:
        return LinkageKey.from_hex(data.decode("ascii"))
    except (UnicodeDecodeError, ConfigError):
        raise ConfigError(detail=f"{path} does not hold a linkage key (64 hex digits)") from None


def init_key(data_dir: Path) -> LinkageKey:
    """Create a new random network key at this node; ConfigError when the node has one already."""
    _key_dir(data_dir)
    return generate_key_file(key_path(data_dir))


def import_key(data_dir: Path, source: Path) -> LinkageKey:
    """Install the network key from the operator's file; ConfigError when the node has one already."""
    key = read_key_file(source)
    _key_dir(data_dir)
    write_key_file(key_path(data_dir), key)
    return key


def rotate_key(data_dir: Path, source: Path | None = None) -> KeyRotation:
    """Replace the node's key with the one in ``source`` (a new random one without it), keeping the old."""
    path = key_path(data_dir)
    if not path.exists():
        raise ConfigError(detail="the node has no linkage key to rotate; run medfed node linkage-key init or import")
    return rotate_key_file(path, read_key_file(source) if source is not None else None)
