"""Identity keys (Ed25519), sealing keys (X25519) and their files.

Every node, researcher, coordinator and the network admin has an Ed25519 signing key: small keys,
deterministic signatures (no per-signature randomness to get wrong), no parameter choices, and fast
verification. Nodes also hold an X25519 key so that secrets can be sealed to them (see
:mod:`common.crypto.sealing`); it is a separate key, never the Ed25519 key converted, so that signing
and key agreement never share key material.

Public keys are written as base64url of their 32 raw bytes (``to_text``) and identified by a
fingerprint, ``"sha256:" + hex(SHA-256(raw public key))``, short enough to read out over the phone at
enrolment. Private keys are written as unencrypted PKCS#8 PEM; the file, not a passphrase, is the
protection, so :func:`save_private_key` writes it atomically with mode 0600 and never over an existing
key, and :func:`load_private_key_pem` refuses a key file that anyone but its owner may read.

Nothing here puts key material into an exception or a ``repr``: a key prints as its public fingerprint.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Self

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

# common/crypto is the one home of cryptography.hazmat; ruff's TID251 ban applies everywhere else.
from cryptography.hazmat.primitives import serialization  # noqa: TID251
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey  # noqa: TID251
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey  # noqa: TID251

from common.crypto.encoding import b64url_decode, b64url_encode
from common.crypto.kdf import sha256
from common.errors import AccessError, ConfigError, ErrorCode, InputError

__all__ = [
    "SealPublicKey",
    "SealingKey",
    "SigningKey",
    "VerifyKey",
    "load_private_key_pem",
    "save_private_key",
]

_RAW_KEY_LENGTH = 32
_MAX_KEY_FILE_BYTES = 64 * 1024


def _fingerprint(raw: bytes) -> str:
    return "sha256:" + sha256(raw).hex()


def _raw_public_bytes(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _pkcs8_pem(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_private_pem(data: bytes, kind: str) -> object:
    """Parse an unencrypted PEM private key; ConfigError (no key bytes in the detail) if that fails."""
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(detail=f"the {kind} private key is encrypted; medfed expects unencrypted PKCS#8") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(detail=f"not a PEM {kind} private key") from None


def _raw_from_text(text: str, kind: str) -> bytes:
    try:
        return b64url_decode(text)
    except InputError:
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"{kind} public key is not base64url text") from None


class VerifyKey:
    """An Ed25519 public key: verifies signatures made by the matching :class:`SigningKey`."""

    __slots__ = ("_key", "_raw")

    def __init__(self, key: Ed25519PublicKey) -> None:
        """Wrap a ``cryptography`` key; other code builds VerifyKeys with ``from_bytes``/``from_text``."""
        self._key = key
        self._raw = _raw_public_bytes(key)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        """The key from its 32 raw bytes; anything else is an InputError(INVALID_REQUEST)."""
        if not isinstance(raw, bytes | bytearray) or len(raw) != _RAW_KEY_LENGTH:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="an Ed25519 public key is 32 raw bytes")
        try:
            return cls(Ed25519PublicKey.from_public_bytes(bytes(raw)))
        except ValueError:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="not an Ed25519 public key") from None

    @classmethod
    def from_text(cls, text: str) -> Self:
        """The key from base64url text (no padding) of its raw bytes, as written by :meth:`to_text`."""
        return cls.from_bytes(_raw_from_text(text, "Ed25519"))

    def to_bytes(self) -> bytes:
        """The 32 raw bytes of the key."""
        return self._raw

    def to_text(self) -> str:
        """base64url text without padding of the raw bytes."""
        return b64url_encode(self._raw)

    def fingerprint(self) -> str:
        """``"sha256:"`` followed by the hex SHA-256 of the raw public key."""
        return _fingerprint(self._raw)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Return if ``signature`` is this key's signature over ``message``; else AccessError(UNAUTHENTICATED)."""
        try:
            self._key.verify(bytes(signature), message)
        except (InvalidSignature, TypeError):
            raise AccessError(ErrorCode.UNAUTHENTICATED, detail="signature does not verify") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyKey):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash((VerifyKey, self._raw))

    def __repr__(self) -> str:
        return f"VerifyKey({self.fingerprint()!r})"


class SigningKey:
    """An Ed25519 private key: the identity of a node, coordinator, researcher or network admin."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        """Wrap a ``cryptography`` key; other code uses ``generate`` or ``from_pem``."""
        self._key = key

    @classmethod
    def generate(cls) -> Self:
        """A new random key (from the operating system's CSPRNG)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> Self:
        """The key from unencrypted PKCS#8 PEM; anything else is a ConfigError (keys are operator files)."""
        key = _load_private_pem(data, "Ed25519")
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(detail="the PEM holds a private key of another type, not Ed25519")
        return cls(key)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM; write it with :func:`save_private_key` (mode 0600)."""
        return _pkcs8_pem(self._key)

    def public_key(self) -> VerifyKey:
        """The matching public key."""
        return VerifyKey(self._key.public_key())

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_key().fingerprint()!r})"


class SealPublicKey:
    """An X25519 public key: anyone can seal a message to it with :func:`common.crypto.seal`."""

    __slots__ = ("_key", "_raw")

    def __init__(self, key: X25519PublicKey) -> None:
        """Wrap a ``cryptography`` key; other code builds these with ``from_bytes``/``from_text``."""
        self._key = key
        self._raw = _raw_public_bytes(key)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        """The key from its 32 raw bytes; anything else is an InputError(INVALID_REQUEST)."""
        if not isinstance(raw, bytes | bytearray) or len(raw) != _RAW_KEY_LENGTH:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="an X25519 public key is 32 raw bytes")
        try:
            return cls(X25519PublicKey.from_public_bytes(bytes(raw)))
        except ValueError:  # pragma: no cover - every 32-byte string is an X25519 public value
            raise InputError(ErrorCode.INVALID_REQUEST, detail="not an X25519 public key") from None

    @classmethod
    def from_text(cls, text: str) -> Self:
        """The key from base64url text (no padding) of its raw bytes, as written by :meth:`to_text`."""
        return cls.from_bytes(_raw_from_text(text, "X25519"))

    def to_bytes(self) -> bytes:
        """The 32 raw bytes of the key."""
        return self._raw

    def to_text(self) -> str:
        """base64url text without padding of the raw bytes."""
        return b64url_encode(self._raw)

    def fingerprint(self) -> str:
        """``"sha256:"`` followed by the hex SHA-256 of the raw public key."""
        return _fingerprint(self._raw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SealPublicKey):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash((SealPublicKey, self._raw))

    def __repr__(self) -> str:
        return f"SealPublicKey({self.fingerprint()!r})"


class SealingKey:
    """An X25519 private key: opens what was sealed to its :class:`SealPublicKey`."""

    __slots__ = ("_key",)

    def __init__(self, key: X25519PrivateKey) -> None:
        """Wrap a ``cryptography`` key; other code uses ``generate`` or ``from_pem``."""
        self._key = key

    @classmethod
    def generate(cls) -> Self:
        """A new random key (from the operating system's CSPRNG)."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes) -> Self:
        """The key from unencrypted PKCS#8 PEM; anything else is a ConfigError (keys are operator files)."""
        key = _load_private_pem(data, "X25519")
        if not isinstance(key, X25519PrivateKey):
            raise ConfigError(detail="the PEM holds a private key of another type, not X25519")
        return cls(key)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM; write it with :func:`save_private_key` (mode 0600)."""
        return _pkcs8_pem(self._key)

    def public_key(self) -> SealPublicKey:
        """The matching public key."""
        return SealPublicKey(self._key.public_key())

    def __repr__(self) -> str:
        return f"SealingKey(public={self.public_key().fingerprint()!r})"


def save_private_key(path: Path, pem: bytes) -> None:
    """Write a private key file atomically with mode 0600; ConfigError if ``path`` already exists.

    The key is written to a fresh temporary file (``O_EXCL``, mode 0600 whatever the umask) in the same
    directory, flushed to disk, and then hard-linked to ``path``: ``link`` fails if ``path`` exists, so
    an existing key is never overwritten, even by a concurrent writer, and ``path`` never holds a
    partial key. The file system must support hard links (every local Linux file system does).
    """
    path = Path(path)
    directory = path.parent
    if path.exists() or path.is_symlink():
        raise ConfigError(detail=f"refusing to overwrite the existing key file {path}")
    temporary = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, 0o600)
    except FileNotFoundError:
        raise ConfigError(detail=f"the directory for the key file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(detail=f"cannot create the key file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise ConfigError(detail=f"refusing to overwrite the existing key file {path}") from None
        except OSError as exc:
            raise ConfigError(detail=f"cannot create the key file {path}: {exc.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make the new directory entry durable (best effort: some file systems refuse fsync on a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:  # pragma: no cover - the directory was just written to
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - depends on the file system
        pass
    finally:
        os.close(fd)


def load_private_key_pem(path: Path) -> bytes:
    """The bytes of a private key file; ConfigError if it is missing, not a file, or open to group/others.

    Like OpenSSH, any permission bit for group or others (mode & 0o077) is refused, so a key that was
    copied with a careless umask is noticed before it is used. The mode is read from the opened file
    descriptor, so the file checked is the file read. Symbolic links are followed (Kubernetes mounts
    secrets through them); the mode checked is the target's.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(detail=f"the key file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(detail=f"cannot open the key file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(detail=f"the key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                detail=f"the key file {path} has mode {stat.S_IMODE(info.st_mode):04o}; "
                "it must not be accessible by group or others (chmod 600)"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise ConfigError(detail=f"the key file {path} is too large to be a key")
    return data
