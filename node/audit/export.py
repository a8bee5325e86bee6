"""The audit chain for an auditor: JSON lines, the keys to check them, and the reader that checks them.

``medfed node audit export OUT`` writes::

    {"format": "medfed-audit-export", "version": 1, "node": NODE_ID | null, "exported_at": MICROS,
     "audit_keys": {FINGERPRINT: BASE64URL, ...}, "identity_key": BASE64URL | null,
     "head": {"seq": N, "hash": HEX}}
    {"seq": 1, "at": MICROS, "kind": "...", "actor": "...", "details": {...}, "subject": "h1:..." | null,
     "prev_hash": HEX, "hash": HEX, "key_id": "sha256:...", "signature": BASE64URL}
    ...

Local subject references never leave the node: entries carry only their pseudonyms. The keys in the
header are a convenience; an auditor who does not trust the file pins them from elsewhere (the
coordinator's receipts name the audit key and are signed by the node key registered at enrolment):
``medfed node audit verify --export FILE --public-key KEY --node-key KEY --against RECEIPT``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy.engine import Engine

from common.crypto import VerifyKey, canonical_json
from common.errors import ConfigError, InputError
from node.audit.entries import AuditKind
from node.store import audit_chain as store
from node.store.audit_chain import ChainRow

__all__ = ["EXPORT_FORMAT", "ExportHeader", "chain_keys", "export_chain", "read_export"]

EXPORT_FORMAT = "medfed-audit-export"
EXPORT_VERSION = 1
_ENTRY_FIELDS = ("seq", "at", "kind", "actor", "details", "subject", "prev_hash", "hash", "key_id", "signature")


@dataclass(frozen=True, slots=True)
class ExportHeader:
    """The first line of an export."""

    node: str | None
    audit_keys: dict[str, VerifyKey]
    identity_key: VerifyKey | None
    head: tuple[int, str]


def chain_keys(engine: Engine) -> dict[str, VerifyKey]:
    """Every audit key the chain introduced (its first entry and each key rotation), by fingerprint."""
    keys: dict[str, VerifyKey] = {}
    for kind in (AuditKind.STARTED, AuditKind.KEY_ROTATED):
        for row in store.iter_entries(engine, kind=str(kind)):
            text = orjson.loads(row.details).get("public_key")
            if isinstance(text, str):
                key = VerifyKey.from_text(text)
                keys[key.fingerprint()] = key
    return keys


def _entry_line(row: ChainRow) -> bytes:
    document = {name: getattr(row, name) for name in _ENTRY_FIELDS}
    document["details"] = orjson.loads(row.details)
    return orjson.dumps(document) + b"\n"


def export_chain(engine: Engine, out: Path, *, node: str | None = None, identity_key: VerifyKey | None = None) -> int:
    """Write the chain to ``out`` (a new file, mode 0600); returns how many entries were written."""
    seq, digest = store.chain_head(engine)
    header = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "node": node,
        "exported_at": time.time_ns() // 1000,
        "audit_keys": {fingerprint: key.to_text() for fingerprint, key in chain_keys(engine).items()},
        "identity_key": None if identity_key is None else identity_key.to_text(),
        "head": {"seq": seq, "hash": digest},
    }
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise ConfigError(detail=f"{out} exists; choose a new file") from None
    except OSError as exc:
        raise ConfigError(detail=f"cannot create {out} ({type(exc).__name__})") from None
    count = 0
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(header) + b"\n")
        for row in store.iter_entries(engine):
            if row.seq > seq:
                break  # appended while exporting: the export ends at the head it announced
            handle.write(_entry_line(row))
            count += 1
    return count


def _refuse(line: int, problem: str) -> InputError:
    return InputError(detail=f"not a medfed audit export: line {line}: {problem}", hints=(f"line {line}: {problem}",))


def _header(raw: bytes) -> ExportHeader:
    try:
        document = orjson.loads(raw)
        if document.get("format") != EXPORT_FORMAT or document.get("version") != EXPORT_VERSION:
            raise _refuse(1, "format")
        keys = {}
        for text in document["audit_keys"].values():
            key = VerifyKey.from_text(text)
            keys[key.fingerprint()] = key
        identity = document.get("identity_key")
        return ExportHeader(
            node=document.get("node"),
            audit_keys=keys,
            identity_key=None if identity is None else VerifyKey.from_text(identity),
            head=(int(document["head"]["seq"]), str(document["head"]["hash"])),
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError, InputError):
        raise _refuse(1, "header") from None


def _row(raw: bytes, line: int) -> ChainRow:
    try:
        document: Mapping[str, Any] = orjson.loads(raw)
        values = {name: document[name] for name in _ENTRY_FIELDS}
        values["details"] = canonical_json(values["details"]).decode("utf-8")
        values["subject_ref"] = None
        if type(values["seq"]) is not int or type(values["at"]) is not int:
            raise TypeError("seq and at are integers")
        if not all(
            isinstance(values[name], str) for name in ("kind", "actor", "prev_hash", "hash", "key_id", "signature")
        ):
            raise TypeError("text fields")
        if values["subject"] is not None and not isinstance(values["subject"], str):
            raise TypeError("subject")
        return ChainRow(**values)
    except (orjson.JSONDecodeError, KeyError, TypeError, InputError):
        raise _refuse(line, "entry") from None


def read_export(handle: IO[bytes]) -> tuple[ExportHeader, Iterator[ChainRow]]:
    """The header of an export and an iterator over its entries (InputError naming the bad line)."""
    first = handle.readline()
    header = _header(first)

    def entries() -> Iterator[ChainRow]:
        for number, raw in enumerate(handle, start=2):
            if raw.strip():
                yield _row(raw, number)

    return header, entries()
