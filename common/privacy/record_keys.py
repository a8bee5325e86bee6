"""Every record's persistent secret key, derived from the node's disclosure secret, so nothing is stored.

Cell-key perturbation (:mod:`common.privacy.cell_key`) needs each record to carry a secret random key
that never changes: a cell's noise is a function of the keys of the records in it, so the same records
always get the same noise, however a query reaches them. Statistical offices store a random number
with every microdata record; a node derives it instead::

    record key = HMAC-SHA256(K, record identity)      K = HMAC-SHA256(node secret, "medfed/disclosure/record-key/v1")

and reads two independent 64-bit integers out of it: the *order* key (bytes 0..7) and the *phase* key
(bytes 8..15), both uniform on ``[0, 2**64)``. HMAC with a 256-bit secret is a pseudorandom function, so
without the node's secret the keys are unpredictable, and with it they are the same on every run, after
a restart, on every replica that shares the secret. Nothing is kept per record, so an ingest, a
deletion or a new view need no key bookkeeping. The secret must never change once results have been
released: a new secret means new noise for the same cells, and two noisy answers to one question can
be averaged (:mod:`node.privacy.secret` writes it once, at ``medfed node init``).

The record identity is whatever names the counted unit (``"Patient/123"`` when patients are counted,
``"Observation/9"`` when observations are); a cell is a *set* of identities, so a record named twice
counts once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable

from common.errors import ConfigError

__all__ = ["KEY_BITS", "KEY_MODULUS", "MIN_SECRET_BYTES", "RecordKeyring", "derive_subkey"]

#: Width of the order and phase keys.
KEY_BITS = 64
#: Keys are integers in ``[0, KEY_MODULUS)``; ``key / KEY_MODULUS`` is a uniform value in ``[0, 1)``.
KEY_MODULUS = 1 << KEY_BITS
#: The node secret is 32 random bytes; anything shorter is refused.
MIN_SECRET_BYTES = 32

_RECORD_KEY_LABEL = b"medfed/disclosure/record-key/v1"


def derive_subkey(secret: bytes, label: bytes) -> bytes:
    """A 32-byte key for one purpose (``label``) from the node's disclosure secret.

    Record keys and differential-privacy noise seeds use different labels, so knowing one never tells
    anything about the other.
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(detail=f"the disclosure secret must be at least {MIN_SECRET_BYTES} bytes")
    return hmac.new(bytes(secret), label, hashlib.sha256).digest()


class RecordKeyring:
    """Computes record keys under one node secret. Its ``repr`` shows no key material."""

    __slots__ = ("_key", "keys")

    def __init__(self, secret: bytes, *, cache_size: int = 1 << 20) -> None:
        """Bind the keyring to the node's disclosure secret (at least 32 bytes; ConfigError otherwise).

        The keys of the last ``cache_size`` records are kept in memory: a node computes many tables
        over the same patients, and a key costs an HMAC.
        """
        self._key = derive_subkey(secret, _RECORD_KEY_LABEL)
        self.keys = functools.lru_cache(maxsize=cache_size)(self._keys)

    def _keys(self, identity: str) -> tuple[int, int]:
        """The record's ``(order key, phase key)``, two independent uniform 64-bit integers."""
        digest = hmac.new(self._key, identity.encode("utf-8"), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:16], "big")

    def min_record_keys(self, identities: Iterable[str]) -> tuple[int, int] | None:
        """The keys of the record with the smallest order key among ``identities``; None if empty.

        The result depends only on the *set* of identities: not on their order, repetition or the way
        the caller collected them.
        """
        smallest: tuple[int, int] | None = None
        for identity in identities:
            pair = self.keys(identity)
            if smallest is None or pair < smallest:
                smallest = pair
        return smallest

    def __repr__(self) -> str:
        return "RecordKeyring(<secret>)"
