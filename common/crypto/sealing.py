"""Anonymous sealed boxes: encrypt to a node's X25519 key so that only that node can read the message.

Used where a secret must cross the coordinator, which relays but must not read it (for example the
network linkage key handed from one node to a new node). The construction is the one ``age`` uses for
its X25519 recipients, built only from ``cryptography`` primitives:

1. a fresh ephemeral X25519 key pair per message; ``shared = X25519(ephemeral, recipient)``;
2. ``key = HKDF-SHA256(ikm=shared, salt=ephemeral_pub || recipient_pub,
   info="medfed/sealed-box/v1" || SHA-256(context))`` — both public keys in the salt bind the key to
   this exchange, the context in the info binds it to one purpose;
3. ``ChaCha20-Poly1305(key, nonce=12 zero bytes, aad=header || context)``. The key is new for every
   message (new ephemeral key), so the fixed nonce is never reused under one key.

Why not a hand-made scheme: encrypting with a raw Diffie-Hellman output or with an unauthenticated
cipher (AES-CTR, CBC without a MAC) lets an attacker alter ciphertexts unnoticed; an AEAD refuses any
altered byte, and HKDF turns the non-uniform X25519 output into a proper key. ChaCha20-Poly1305 is
constant-time in software on every CPU, with no AES-NI needed. There is no sender authentication: a
sealed box says nothing about who sealed it; sign the plaintext (or the box) when that matters.

The ``context`` names what the box is for and to whom (``b"medfed/linkage-key/v1|node=" + node_id``):
a box made for one purpose cannot be replayed as another, because opening it needs the same context.

Byte format, version 1 (49 bytes of overhead)::

    offset  length  field
    0       1       version = 0x01
    1       32      ephemeral X25519 public key
    33      n + 16  ChaCha20-Poly1305 ciphertext of the n-byte plaintext, then its 16-byte tag

The version byte lets a later format (another KEM, a post-quantum hybrid) be introduced while old boxes
are still opened; an unknown version is refused like any other altered box.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag

# common/crypto is the one home of cryptography.hazmat; ruff's TID251 ban applies everywhere else.
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: TID251
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: TID251

from common.crypto.kdf import derive_key, sha256
from common.crypto.keys import SealingKey, SealPublicKey
from common.errors import AccessError, ErrorCode, InputError

__all__ = ["SEAL_OVERHEAD", "open_sealed", "seal"]

_VERSION_1 = 0x01
_LABEL_V1 = b"medfed/sealed-box/v1"
_PUBLIC_KEY_LENGTH = 32
_TAG_LENGTH = 16
_HEADER_LENGTH = 1 + _PUBLIC_KEY_LENGTH
_NONCE = bytes(12)

#: How many bytes longer a sealed box is than its plaintext.
SEAL_OVERHEAD = _HEADER_LENGTH + _TAG_LENGTH


def _box_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes, context: bytes) -> bytes:
    return derive_key(
        shared,
        salt=ephemeral_public + recipient_public,
        info=_LABEL_V1 + sha256(context),
        length=32,
    )


def seal(recipient: SealPublicKey, plaintext: bytes, *, context: bytes) -> bytes:
    """Encrypt ``plaintext`` so that only the holder of ``recipient``'s private key can open it, for ``context``.

    A recipient key that is a low-order point (no shared secret can come of it) is an InputError.
    """
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    recipient_public = recipient.to_bytes()
    try:
        # The only way to reach the wrapped key; sealing is the one module that needs it.
        shared = ephemeral.exchange(recipient._key)
    except ValueError:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the recipient's X25519 key is not usable") from None
    key = _box_key(shared, ephemeral_public, recipient_public, context)
    header = bytes([_VERSION_1]) + ephemeral_public
    return header + ChaCha20Poly1305(key).encrypt(_NONCE, plaintext, header + context)


def open_sealed(recipient: SealingKey, sealed: bytes, *, context: bytes) -> bytes:
    """The plaintext of a box sealed to ``recipient`` for ``context``.

    A box for another key, for another context, of an unknown version, truncated or altered in any byte
    raises AccessError(UNAUTHENTICATED); the error does not say which, so it is no oracle.
    """
    sealed = bytes(sealed)
    if len(sealed) < SEAL_OVERHEAD or sealed[0] != _VERSION_1:
        raise AccessError(ErrorCode.UNAUTHENTICATED, detail="sealed box cannot be opened")
    header = sealed[:_HEADER_LENGTH]
    ephemeral_public = sealed[1:_HEADER_LENGTH]
    recipient_public = recipient.public_key().to_bytes()
    try:
        shared = recipient._key.exchange(SealPublicKey.from_bytes(ephemeral_public)._key)
        key = _box_key(shared, ephemeral_public, recipient_public, context)
        return ChaCha20Poly1305(key).decrypt(_NONCE, sealed[_HEADER_LENGTH:], header + context)
    except (InvalidTag, ValueError, InputError):
        raise AccessError(ErrorCode.UNAUTHENTICATED, detail="sealed box cannot be opened") from None
