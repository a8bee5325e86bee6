"""The coordinator's re-keying of published tokens: a second keyed hash under its own secret.

Nodes publish tokens made under the network linkage key, which the coordinator never holds. Before it
stores one, the coordinator hashes it again under a secret of its own,

    stored = HMAC-SHA256(K_rekey, variant name || 0x1F || token)
    K_rekey = HKDF-SHA256(coordinator secret, info="medfed/linkage/rekey/v1")

so that its index (its database, its backups) is useless to anyone holding only the network key — a
node, or someone who stole one node's key file — and a node cannot check what the index holds by
comparing its own tokens with a leaked copy. Equal tokens still give equal stored values, which is
all a lookup needs. The variant name is part of the message, so a token can match only a token of its
own variant. The coordinator calls these two pure functions; it decides where its secret lives.
"""

from __future__ import annotations

from common.crypto.kdf import HmacSha256, derive_key
from common.errors import ConfigError, ErrorCode, InputError
from common.linkage.tokens import Token

__all__ = ["MIN_SECRET_LENGTH", "RekeyKey", "rekey_token", "rekey_value"]

#: Bytes of secret the coordinator must hold at least.
MIN_SECRET_LENGTH = 32
_INFO = b"medfed/linkage/rekey/v1"
_TOKEN_HEX_LENGTH = 64


class RekeyKey:
    """The coordinator's re-keying key, derived once from its secret. Prints without the key."""

    __slots__ = ("_key", "_macs")

    def __init__(self, coordinator_secret: bytes) -> None:
        """Derive the re-keying key; a secret shorter than 32 bytes is a ConfigError."""
        if not isinstance(coordinator_secret, bytes) or len(coordinator_secret) < MIN_SECRET_LENGTH:
            raise ConfigError(detail=f"the coordinator's linkage secret must be at least {MIN_SECRET_LENGTH} bytes")
        self._key = derive_key(coordinator_secret, info=_INFO)
        # One keyed MAC per variant with ``variant || 0x1F`` absorbed: a lookup re-keys a hundred tokens,
        # and setting the key up for each would cost more than the hashing.
        self._macs: dict[str, HmacSha256] = {}

    def __repr__(self) -> str:
        return "RekeyKey(...)"

    def rekey(self, variant: str, value_hex: str) -> str:
        """The stored form (64 hex digits) of one published token; InputError if it is not a token."""
        return self.rekey_bytes(variant, value_hex).hex()

    def rekey_bytes(self, variant: str, value_hex: str) -> bytes:
        """The stored form of one published token as its 32 bytes (what the index compares)."""
        if len(value_hex) != _TOKEN_HEX_LENGTH:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a linkage token is 64 hex digits")
        try:
            raw = bytes.fromhex(value_hex)
        except ValueError:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="a linkage token is 64 hex digits") from None
        mac = self._macs.get(variant)
        if mac is None:
            mac = self._macs.setdefault(variant, HmacSha256(self._key, variant.encode() + b"\x1f"))
        return mac.mac(raw)


def rekey_value(coordinator_secret: bytes | RekeyKey, variant: str, value_hex: str) -> str:
    """HMAC-SHA256 of one token (``variant``, ``value_hex``) under the coordinator's secret, as hex."""
    key = coordinator_secret if isinstance(coordinator_secret, RekeyKey) else RekeyKey(coordinator_secret)
    return key.rekey(variant, value_hex)


def rekey_token(coordinator_secret: bytes | RekeyKey, token: Token) -> Token:
    """``token`` with its value re-keyed (variant and tier kept): what the coordinator's index stores."""
    return Token(token.variant, token.tier, rekey_value(coordinator_secret, token.variant, token.value_hex))
