"""The node's disclosure secret: 32 random bytes from which every record key and DP noise seed derive.

``medfed node init`` writes it once, as ``disclosure.key`` in the data directory (mode 0600, base64url
text), next to the database; it is never overwritten. Keep it with the node's backups and share it
between replicas of one node: a node that lost it would give every cell new noise, and a researcher
who asked the same question before and after could average the two answers. Rotate it only together
with a new data release policy (and accept that old and new answers can then be combined).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from common.crypto import b64url_decode, b64url_encode, load_private_key_pem, save_private_key
from common.errors import ConfigError, InputError
from common.privacy.record_keys import MIN_SECRET_BYTES

__all__ = ["DISCLOSURE_KEY_FILE", "ensure_disclosure_secret", "load_disclosure_secret"]

DISCLOSURE_KEY_FILE = "disclosure.key"
_SECRET_BYTES = 32


def ensure_disclosure_secret(data_dir: Path) -> bool:
    """Create ``disclosure.key`` in ``data_dir`` if it is absent; True when this call created it."""
    path = Path(data_dir) / DISCLOSURE_KEY_FILE
    if path.exists():
        load_disclosure_secret(data_dir)  # refuse a damaged or world-readable file now, not at the first job
        return False
    try:
        save_private_key(path, (b64url_encode(secrets.token_bytes(_SECRET_BYTES)) + "\n").encode("ascii"))
    except ConfigError:
        if path.exists():  # another process created it at the same moment: use theirs
            return False
        raise
    return True


def load_disclosure_secret(data_dir: Path) -> bytes:
    """The node's disclosure secret; ConfigError if the file is missing, readable by others, or damaged."""
    data = load_private_key_pem(Path(data_dir) / DISCLOSURE_KEY_FILE)
    try:
        secret = b64url_decode(data.decode("ascii").strip())
    except (UnicodeDecodeError, InputError):
        raise ConfigError(detail=f"{DISCLOSURE_KEY_FILE} is not base64url text") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(detail=f"{DISCLOSURE_KEY_FILE} holds fewer than {MIN_SECRET_BYTES} bytes")
    return secret
