"""The node's identity on disk, and enrolment with a coordinator (``medfed node enrol CODE``).

After enrolment the node's data directory holds, all mode 0600 in ``identity/`` (mode 0700)::

    node_signing.key   Ed25519 private key, PKCS#8 PEM: signs every request to the coordinator
    node_sealing.key   X25519 private key, PKCS#8 PEM: opens what is sealed to this node
    coordinator.json   {"coordinator_url", "ca_pem", "ca_fingerprint", "coordinator_public_key",
                        "network_admin_public_key", "node_id", "flower_node_id", "enrolled_at"}

``ca_pem`` is the coordinator's CA certificate (PEM text), ``ca_fingerprint`` its
``"sha256:<hex>"`` fingerprint, ``coordinator_public_key`` the coordinator's Ed25519 key (base64url),
``network_admin_public_key`` the network-admin Ed25519 key (base64url) that signs researchers'
membership certificates and revocation lists (``docs/trust.md``), ``enrolled_at`` an ISO 8601 UTC time.
An identity written before the network-admin key existed has none; it loads, and the node refuses
every job with ``trust_not_configured`` until it is enrolled again.

Enrolment (:func:`enrol`) pins before it trusts:

1. the printed code is read (:func:`parse_enrolment_code`): a secret, the CA fingerprint ``f``, the
   coordinator's URL ``u`` (optional) and the node name ``n``;
2. the coordinator is the URL given, else ``u``, else whatever LAN discovery finds claiming ``f``
   (discovery is only a locator: every candidate must pass the next step);
3. ``GET /channel/v1/ca`` without certificate verification; the answer must be exactly one PEM
   certificate whose fingerprint is ``f``, else the coordinator is refused (ConfigError) and nothing
   is sent or written;
4. over TLS verified against that CA alone, ``POST /channel/v1/enrol`` with the code and public keys
   generated in memory;
5. only when the coordinator accepted, the keys and ``coordinator.json`` are written (the JSON last,
   so its presence means a complete identity; a failed write removes what it had written).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from common.crypto import (
    SealingKey,
    SigningKey,
    VerifyKey,
    b64url_decode,
    certificate_fingerprint,
    client_ssl_context,
    load_private_key_pem,
    save_private_key,
)
from common.discovery import discover_coordinators
from common.errors import ConfigError, ErrorCode, InputError, InternalError, MedfedError
from common.ids import NodeId
from node.coordinator_client import error_for_response, error_for_transport

__all__ = [
    "CA_PATH",
    "COORDINATOR_FILE",
    "DISCOVERY_TIMEOUT_S",
    "ENROL_PATH",
    "IDENTITY_DIR",
    "SEALING_KEY_FILE",
    "SIGNING_KEY_FILE",
    "EnrolmentCode",
    "NodeIdentity",
    "enrol",
    "parse_enrolment_code",
]

IDENTITY_DIR = "identity"
SIGNING_KEY_FILE = "node_signing.key"
SEALING_KEY_FILE = "node_sealing.key"
COORDINATOR_FILE = "coordinator.json"
CA_PATH = "/channel/v1/ca"
ENROL_PATH = "/channel/v1/enrol"
DISCOVERY_TIMEOUT_S = 5.0

_CODE_PREFIX = "mfe_"
_CODE_VERSION = 1
_MAX_CODE_LENGTH = 4096
_FIELDS = frozenset({"v", "s", "f", "u", "n"})
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_CA_BYTES = 64 * 1024
_MAX_JSON_BYTES = 256 * 1024
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True, slots=True)
class EnrolmentCode:
    """A printed enrolment code, read. The code and its secret are left out of ``repr``."""

    code: str = field(repr=False)
    secret: str = field(repr=False)
    fingerprint: str
    url: str | None
    node_name: str


def _refuse_code() -> InputError:
    return InputError(ErrorCode.INVALID_REQUEST, detail="not a medfed enrolment code (mfe_...)")


def _bounded_text(value: object, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _refuse_code()
    return value


def parse_enrolment_code(code: str) -> EnrolmentCode:
    """Read a printed code (``mfe_`` + base64url canonical JSON, see ``coordinator/store/enrolment.py``).

    InputError, naming no part of the code, for anything else.
    """
    code = code.strip() if isinstance(code, str) else ""
    if not code.startswith(_CODE_PREFIX) or len(code) > _MAX_CODE_LENGTH:
        raise _refuse_code()
    try:
        document = orjson.loads(b64url_decode(code[len(_CODE_PREFIX) :]))
    except (InputError, orjson.JSONDecodeError):
        raise _refuse_code() from None
    if not isinstance(document, dict) or not set(document) <= _FIELDS:
        raise _refuse_code()
    version = document.get("v")
    if type(version) is not int or version != _CODE_VERSION:
        raise _refuse_code()
    fingerprint = _bounded_text(document.get("f"), 71)
    if _FINGERPRINT.fullmatch(fingerprint) is None:
        raise _refuse_code()
    url = document.get("u")
    if url is not None and not _bounded_text(url, 2048).startswith(("https://", "http://")):
        raise _refuse_code()
    return EnrolmentCode(
        code=code,
        secret=_bounded_text(document.get("s"), 128),
        fingerprint=fingerprint,
        url=url,
        node_name=_bounded_text(document.get("n"), 200),
    )


@dataclass(frozen=True)
class NodeIdentity:
    """An enrolled node's identity: its keys, its ids and the coordinator it pinned."""

    node_id: NodeId
    flower_node_id: int
    coordinator_url: str
    ca_pem: bytes
    ca_fingerprint: str
    coordinator_public_key: VerifyKey
    enrolled_at: datetime
    signing_key: SigningKey = field(repr=False)
    sealing_key: SealingKey = field(repr=False)
    network_admin_public_key: VerifyKey | None = None  # None: enrolled before the key existed (runs no jobs)

    @classmethod
    def load(cls, data_dir: Path) -> NodeIdentity | None:
        """The identity in ``data_dir``; None before enrolment. ConfigError for a damaged or incomplete one."""
        directory = Path(data_dir) / IDENTITY_DIR
        path = directory / COORDINATOR_FILE
        if not path.is_file():
            return None
        try:
            document = orjson.loads(load_private_key_pem(path))  # the 0600 check applies to the JSON as well
            ca_pem = document["ca_pem"].encode("ascii")
            identity = cls(
                node_id=NodeId(_text(document["node_id"])),
                flower_node_id=_integer(document["flower_node_id"]),
                coordinator_url=_text(document["coordinator_url"]),
                ca_pem=ca_pem,
                ca_fingerprint=_pinned_fingerprint(ca_pem),
                coordinator_public_key=VerifyKey.from_text(document["coordinator_public_key"]),
                enrolled_at=datetime.fromisoformat(document["enrolled_at"]),
                signing_key=SigningKey.from_pem(load_private_key_pem(directory / SIGNING_KEY_FILE)),
                sealing_key=SealingKey.from_pem(load_private_key_pem(directory / SEALING_KEY_FILE)),
                network_admin_public_key=_optional_key(document.get("network_admin_public_key")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, InputError):
            raise ConfigError(detail=f"{path} is damaged; enrol the node again") from None
        if identity.ca_fingerprint != document.get("ca_fingerprint"):
            raise ConfigError(detail=f"{path} holds a CA that does not match its fingerprint")
        return identity


def _optional_key(value: object) -> VerifyKey | None:
    return None if value is None else VerifyKey.from_text(_text(value))


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value


def _integer(value: object) -> int:
    if type(value) is not int:
        raise TypeError("expected an integer")
    return value


def _pinned_fingerprint(ca_pem: bytes) -> str:
    """The fingerprint of a CA answer that holds exactly one PEM certificate; InputError otherwise.

    One certificate, because TLS trusts every certificate in the PEM: a coordinator (or someone in
    between) must not get a second CA trusted behind the one whose fingerprint was checked.
    """
    if ca_pem.count(b"-----BEGIN") != 1 or not ca_pem.lstrip().startswith(_PEM_CERTIFICATE):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="the CA answer is not exactly one PEM certificate")
    return certificate_fingerprint(ca_pem)


def _candidates(
    parsed: EnrolmentCode,
    coordinator_url: str | None,
    *,
    discovery_timeout_s: float,
    discovery_interfaces: Sequence[str] | None,
) -> list[str]:
    given = coordinator_url if coordinator_url is not None else parsed.url
    if given is not None:
        if not given.startswith("https://"):
            raise ConfigError(detail="the coordinator URL must be https:// (the channel is TLS only)")
        return [given.rstrip("/")]
    found = discover_coordinators(
        timeout_s=discovery_timeout_s, fingerprint=parsed.fingerprint, interfaces=discovery_interfaces
    )
    urls = [candidate.url for candidate in found if candidate.scheme == "https"]
    if not urls:
        raise InternalError(ErrorCode.COORDINATOR_UNAVAILABLE, detail="no coordinator with this code's CA on the LAN")
    return urls


def _fetch_pinned_ca(url: str, fingerprint: str, *, proxy: str | None, timeout_s: float) -> bytes:
    """The coordinator's CA, fetched unverified and accepted only if its fingerprint is the code's."""
    try:
        # Unverified on purpose: nothing is trusted yet; the fingerprint check below is the trust decision.
        with httpx.Client(verify=False, proxy=proxy, trust_env=True, timeout=timeout_s) as client:  # noqa: S501
            response = client.get(url + CA_PATH)
    except httpx.TransportError as exc:
        raise error_for_transport(exc) from None
    if not response.is_success:
        raise error_for_response(response)
    ca_pem = response.content
    try:
        matches = len(ca_pem) <= _MAX_CA_BYTES and _pinned_fingerprint(ca_pem) == fingerprint
    except InputError:
        matches = False
    if not matches:
        raise ConfigError(detail="the coordinator's CA does not match the enrolment code's fingerprint")
    return ca_pem


def _first_pinned(urls: Sequence[str], fingerprint: str, *, proxy: str | None, timeout_s: float) -> tuple[str, bytes]:
    """The first URL whose CA passes the pin, with that CA; the last failure when none does.

    Discovery may list a spoofer before the coordinator, so every candidate gets the same check.
    """
    failure: MedfedError = InternalError(ErrorCode.COORDINATOR_UNAVAILABLE, detail="no coordinator to try")
    for url in urls:
        try:
            return url, _fetch_pinned_ca(url, fingerprint, proxy=proxy, timeout_s=timeout_s)
        except MedfedError as exc:
            failure = exc
    raise failure


def _post_enrolment(
    url: str, ca_pem: bytes, body: dict[str, Any], *, proxy: str | None, timeout_s: float
) -> dict[str, Any]:
    try:
        with httpx.Client(verify=client_ssl_context(ca_pem), proxy=proxy, trust_env=True, timeout=timeout_s) as client:
            response = client.post(url + ENROL_PATH, content=orjson.dumps(body), headers=_JSON)
    except httpx.TransportError as exc:
        raise error_for_transport(exc) from None
    if not response.is_success:
        raise error_for_response(response)
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise InternalError(detail="the coordinator's enrolment answer is not JSON") from None
    if not isinstance(answer, dict):
        raise InternalError(detail="the coordinator's enrolment answer is not an object")
    return answer


_JSON = {"Content-Type": "application/json", "Accept": "application/json"}


def enrol(
    data_dir: Path,
    code: str,
    *,
    version: str,
    coordinator_url: str | None = None,
    proxy: str | None = None,
    timeout_s: float = 30.0,
    discovery_timeout_s: float = DISCOVERY_TIMEOUT_S,
    discovery_interfaces: Sequence[str] | None = None,
) -> NodeIdentity:
    """Enrol this node with the coordinator the code names and write its identity (see the module docstring).

    Errors, each leaving the data directory as it was: InputError for a malformed code; ConfigError when
    the node is enrolled already, or the coordinator's CA does not match the code, or its TLS
    certificate does not chain to that CA; AccessError when the coordinator refuses the code (used,
    expired, unknown); InternalError(COORDINATOR_UNAVAILABLE) when no coordinator can be reached.
    """
    parsed = parse_enrolment_code(code)
    directory = Path(data_dir) / IDENTITY_DIR
    for name in (COORDINATOR_FILE, SIGNING_KEY_FILE, SEALING_KEY_FILE):
        if (directory / name).exists():
            raise ConfigError(detail=f"the node is enrolled already ({directory / name} exists)")
    candidates = _candidates(
        parsed, coordinator_url, discovery_timeout_s=discovery_timeout_s, discovery_interfaces=discovery_interfaces
    )
    url, ca_pem = _first_pinned(candidates, parsed.fingerprint, proxy=proxy, timeout_s=timeout_s)
    signing_key, sealing_key = SigningKey.generate(), SealingKey.generate()
    answer = _post_enrolment(
        url,
        ca_pem,
        {
            "code": parsed.code,
            "node_name": parsed.node_name,
            "public_key": signing_key.public_key().to_text(),
            "seal_public_key": sealing_key.public_key().to_text(),
            "version": version,
        },
        proxy=proxy,
        timeout_s=timeout_s,
    )
    try:
        admin_key = _optional_key(answer.get("network_admin_public_key"))
        record = {
            "coordinator_url": url,
            "ca_pem": ca_pem.decode("ascii"),
            "ca_fingerprint": parsed.fingerprint,
            "coordinator_public_key": VerifyKey.from_text(answer["coordinator_public_key"]).to_text(),
            "network_admin_public_key": None if admin_key is None else admin_key.to_text(),
            "node_id": _text(answer["node_id"]),
            "flower_node_id": _integer(answer["flower_node_id"]),
            "enrolled_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    except (KeyError, TypeError, InputError, UnicodeDecodeError):
        raise InternalError(detail="the coordinator's enrolment answer is incomplete") from None
    _write_identity(directory, signing_key, sealing_key, orjson.dumps(record, option=orjson.OPT_INDENT_2))
    identity = NodeIdentity.load(data_dir)
    assert identity is not None
    return identity


def _write_identity(directory: Path, signing_key: SigningKey, sealing_key: SealingKey, record: bytes) -> None:
    """Write both keys, then the record; on any failure remove what this call wrote.

    The coordinator has registered the node by then, so after such a failure (a full disk, a
    read-only directory) the node needs a new code.
    """
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(detail=f"cannot create {directory} ({type(exc).__name__})") from exc
    written: list[Path] = []
    try:
        for name, pem in ((SIGNING_KEY_FILE, signing_key.to_pem()), (SEALING_KEY_FILE, sealing_key.to_pem())):
            save_private_key(directory / name, pem)
            written.append(directory / name)
        _write_private(directory / COORDINATOR_FILE, record)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically with mode 0600, never over an existing file."""
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        raise ConfigError(detail=f"refusing to overwrite {path}") from None
    except OSError as exc:
        raise ConfigError(detail=f"cannot write {path} ({type(exc).__name__})") from exc
    finally:
        temporary.unlink(missing_ok=True)
