"""Pairwise key agreement: two holders of X25519 keys derive the same secret key without sending it.

Used by secure aggregation (:mod:`common.privacy.secure_sum`): every pair of nodes in a round needs a
mask that both can compute and the coordinator, which relays their public keys, cannot. The recipe:

1. ``shared = X25519(own private key, peer public key)`` — the same 32 bytes on both sides;
2. ``key = HKDF-SHA256(ikm=shared, salt=min(pub_a, pub_b) || max(pub_a, pub_b),
   info="medfed/agreement/v1" || SHA-256(context))``.

Both public keys go into the salt in a fixed (sorted) order, so each side derives the same key whoever
calls first, and the key is bound to this pair of keys; the context in the info binds it to one purpose
(a job, a round, an attempt), so one pair of keys yields independent keys for every round. The raw
X25519 output is never used as a key: it is not uniform, and HKDF makes it so.

A peer key that is a low-order point gives an all-zero shared secret; ``cryptography`` refuses it and
so do we (InputError), because a key derived from it would be known to everybody.
"""

from __future__ import annotations

from common.crypto.kdf import derive_key, sha256
from common.crypto.keys import SealingKey, SealPublicKey
from common.errors import ErrorCode, InputError

__all__ = ["agree_key"]

_LABEL_V1 = b"medfed/agreement/v1"


def agree_key(own: SealingKey, peer: SealPublicKey, *, context: bytes, length: int = 32) -> bytes:
    """The ``length``-byte key that ``own`` and ``peer`` share for ``context`` (same on both sides)."""
    own_public = own.public_key().to_bytes()
    peer_public = peer.to_bytes()
    try:
        # The wrapped keys are reached here as in sealing.py: these recipes are the only users of them.
        shared = own._key.exchange(peer._key)
    except ValueError:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the peer's X25519 key is not usable") from None
    first, second = sorted((own_public, peer_public))
    return derive_key(shared, salt=first + second, info=_LABEL_V1 + sha256(context), length=length)
