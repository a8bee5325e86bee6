"""Key derivation, message authentication and comparison: HKDF-SHA256, HMAC-SHA256, constant-time equality.

Why these and nothing hand-made:

- **HKDF-SHA256** (RFC 5869) turns one secret into many independent keys, one per ``info`` label. The
  patient index derives a key per linkage-token variant from the network linkage key this way, and
  sealed boxes derive their AEAD key from an X25519 shared secret. ``info`` is required and keyword-only
  so every call site names its purpose; two purposes that share a secret never share a key.
- **HMAC-SHA256** (RFC 2104) is the keyed hash for linkage tokens: without the key nobody can test a
  guessed name and date of birth against a token. A bare ``sha256(key + message)`` would be open to
  length extension; HMAC is not.
- **Constant-time equality** for MACs, tokens and digests, so the time a comparison takes does not tell
  an attacker how many leading bytes they guessed right.

All three come from ``cryptography`` (OpenSSL/Rust underneath), never from a local implementation.
"""

from __future__ import annotations

# common/crypto is the one home of cryptography.hazmat; ruff's TID251 ban applies everywhere else.
from cryptography.hazmat.primitives import constant_time, hashes  # noqa: TID251
from cryptography.hazmat.primitives import hmac as _hmac  # noqa: TID251
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: TID251

from common.errors import InternalError

__all__ = ["HKDF_MAX_LENGTH", "HmacSha256", "constant_time_equal", "derive_key", "hmac_sha256", "sha256"]

#: RFC 5869 allows at most 255 blocks of the hash's output length.
HKDF_MAX_LENGTH = 255 * 32


def derive_key(secret: bytes, *, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    """Derive ``length`` bytes from ``secret`` with HKDF-SHA256 (RFC 5869), bound to ``info``.

    ``salt=None`` is RFC 5869's default (a block of zero bytes), which gives the same output as an empty
    salt. A ``length`` outside 1..8160 is a bug in the caller and raises InternalError.
    """
    if not 1 <= length <= HKDF_MAX_LENGTH:
        raise InternalError(detail=f"derive_key length must be 1..{HKDF_MAX_LENGTH}, got {length}")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """The 32-byte HMAC-SHA256 of ``message`` under ``key`` (RFC 2104)."""
    mac = _hmac.HMAC(key, hashes.SHA256())
    mac.update(message)
    return mac.finalize()


class HmacSha256:
    """HMAC-SHA256 under one key, set up once: each :meth:`mac` copies the keyed state (about 3x faster
    than :func:`hmac_sha256` for short messages, which sets the key up on every call).

    ``prefix`` is absorbed once as the start of every message: ``HmacSha256(k, p).mac(m)`` equals
    ``hmac_sha256(k, p + m)``. Safe to share between threads (the set-up state is only ever copied).
    """

    __slots__ = ("_state",)

    def __init__(self, key: bytes, prefix: bytes = b"") -> None:
        """Key the MAC (and absorb ``prefix``)."""
        self._state = _hmac.HMAC(key, hashes.SHA256())
        if prefix:
            self._state.update(prefix)

    def __repr__(self) -> str:
        return "HmacSha256(...)"

    def mac(self, message: bytes) -> bytes:
        """The 32-byte HMAC-SHA256 of the prefix followed by ``message``."""
        mac = self._state.copy()
        mac.update(message)
        return mac.finalize()


def sha256(data: bytes) -> bytes:
    """The 32-byte SHA-256 digest of ``data`` (for fingerprints and body hashes; not a MAC)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Whether ``a`` and ``b`` are equal, in time that depends only on their lengths."""
    return constant_time.bytes_eq(bytes(a), bytes(b))
