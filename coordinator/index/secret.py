"""The coordinator's re-keying secret: 32 random bytes in ``identity/linkage_rekey.key`` (mode 0600).

Every token a node publishes is hashed again under this secret before it is stored
(:mod:`common.linkage.rekey`), so the index is useless to anyone who holds only the network linkage
key. It is created by ``medfed coordinator init`` beside the coordinator's signing key, or on first
use by a coordinator initialised before the index existed; it never leaves the coordinator. Losing it
means every node republishes (the stored tokens can no longer be matched); there is no rotation
command yet: rotating means a new file and a republish by every node.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from common.crypto import load_private_key_pem, save_private_key
from common.errors import ConfigError
from common.linkage.rekey import MIN_SECRET_LENGTH, RekeyKey

__all__ = ["REKEY_SECRET_FILE", "ensure_rekey_secret", "load_rekey_key"]

REKEY_SECRET_FILE = "linkage_rekey.key"  # noqa: S105  (a file name, not a secret)
_IDENTITY_DIR = "identity"


def _path(data_dir: Path) -> Path:
    return Path(data_dir) / _IDENTITY_DIR / REKEY_SECRET_FILE


def ensure_rekey_secret(data_dir: Path) -> bool:
    """Create the secret if it is absent (idempotent); True when this call created it."""
    path = _path(data_dir)
    if path.exists():
        return False
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(detail=f"cannot create {path.parent} ({type(exc).__name__})") from exc
    try:
        save_private_key(path, (secrets.token_bytes(MIN_SECRET_LENGTH).hex() + "\n").encode("ascii"))
    except ConfigError:
        if path.exists():  # another process created it first
            return False
        raise
    return True


def load_rekey_key(data_dir: Path) -> RekeyKey:
    """The re-keying key derived from the secret (created first when absent)."""
    ensure_rekey_secret(data_dir)
    path = _path(data_dir)
    try:
        secret = bytes.fromhex(load_private_key_pem(path).decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(detail=f"{path} does not hold hex text") from None
    return RekeyKey(secret)
