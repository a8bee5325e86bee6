"""``medfed node audit verify``: which keys and which receipt a verification trusts, from files and the node.

On the node (:func:`verify_node`): the audit key in the data directory is pinned, earlier keys are
trusted only as the chain hands over from it (:func:`node.audit.verify.trusted_keys`), subject
pseudonyms are checked against their local references, and a receipt is checked with the node's
identity key (from ``identity/``, or ``--node-key`` for a node enrolled since with another key).

On an export (:func:`verify_export`): keys given with ``--public-key`` are pinned; without them the
export's own header is taken at its word (and the result says so). A receipt is checked with
``--node-key``, else the header's identity key.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
from sqlalchemy.engine import Engine

from common.audit_receipt import Receipt, read_receipt
from common.crypto import VerifyKey
from common.errors import ConfigError, InputError
from node.audit.entries import AuditKind
from node.audit.export import read_export
from node.audit.keys import audit_public_key, subject_key
from node.audit.verify import VerifyReport, trusted_keys, trusted_keys_of_rows, verify_chain, verify_rows
from node.identity import NodeIdentity

__all__ = ["load_receipt", "verify_export", "verify_node"]


def _key(text: str, what: str) -> VerifyKey:
    try:
        return VerifyKey.from_text(text.strip())
    except InputError:
        raise ConfigError(detail=f"{what} is not an Ed25519 public key (base64url)") from None


def load_receipt(path: Path, node_key: VerifyKey) -> Receipt:
    """The receipt in ``path`` (as the node signed it, or as the coordinator's API returns it), verified."""
    try:
        document = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(detail=f"cannot read {path} ({type(exc).__name__})") from None
    except orjson.JSONDecodeError:
        raise ConfigError(detail=f"{path} is not JSON") from None
    if isinstance(document, dict) and isinstance(document.get("receipt"), dict):
        document = document["receipt"]  # GET /api/nodes/{id}/audit-receipt wraps it
    try:
        return read_receipt(document, node_key)
    except InputError as exc:
        raise ConfigError(detail=f"{path}: {exc.detail}", hints=exc.hints) from None


def verify_node(
    engine: Engine,
    data_dir: Path,
    *,
    receipt_path: Path | None = None,
    public_keys: Sequence[str] = (),
    node_key: str | None = None,
) -> VerifyReport:
    """Verify the chain in a node's database (see the module docstring)."""
    current = audit_public_key(data_dir)
    pinned = [_key(text, "--public-key") for text in public_keys] + ([current] if current is not None else [])
    if not pinned:
        raise ConfigError(detail="no audit key in the data directory; give --public-key")
    receipt = None
    if receipt_path is not None:
        if node_key is not None:
            identity_key = _key(node_key, "--node-key")
        else:
            identity = NodeIdentity.load(data_dir)
            if identity is None:
                raise ConfigError(detail="the node is not enrolled; give --node-key to check a receipt")
            identity_key = identity.signing_key.public_key()
        receipt = load_receipt(receipt_path, identity_key)
    keys = trusted_keys(engine, pinned)
    return verify_chain(engine, keys=keys, subject_key=subject_key(data_dir), receipt=receipt)


def verify_export(
    path: Path,
    *,
    receipt_path: Path | None = None,
    public_keys: Sequence[str] = (),
    node_key: str | None = None,
) -> tuple[VerifyReport, bool]:
    """Verify an export; also returns whether its keys were pinned (False: taken from the file's header)."""
    pinned = [_key(text, "--public-key") for text in public_keys]
    key_kinds = {str(AuditKind.STARTED), str(AuditKind.KEY_ROTATED)}
    try:
        with Path(path).open("rb") as handle:
            header, rows = read_export(handle)
            key_rows = [row for row in rows if row.kind in key_kinds]
        keys = trusted_keys_of_rows(key_rows, pinned) if pinned else header.audit_keys
        receipt = None
        if receipt_path is not None:
            identity_key = _key(node_key, "--node-key") if node_key is not None else header.identity_key
            if identity_key is None:
                raise ConfigError(detail="the export names no node key; give --node-key to check a receipt")
            receipt = load_receipt(receipt_path, identity_key)
        with Path(path).open("rb") as handle:
            header, rows = read_export(handle)
            report = verify_rows(rows, keys=keys, head=header.head, receipt=receipt)
    except OSError as exc:
        raise ConfigError(detail=f"cannot read {path} ({type(exc).__name__})") from None
    except InputError as exc:
        raise ConfigError(detail=f"{path}: {exc.detail}", hints=exc.hints) from None
    return report, bool(pinned)
