"""What the node published per patient: an opaque, random reference, the key id and a digest of the tokens.

The coordinator knows a patient only by the reference (:func:`new_ref`: 128 random bits, URL-safe),
never by the FHIR id, so the index cannot be joined with anything else the coordinator sees. A patient
keeps one reference for life: republishing replaces the tokens under it, withdrawing marks it, and the
record locator finds the patient again from it (:func:`patient_for_ref`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from node.store.models import LinkageRecord

__all__ = [
    "OPTED_OUT",
    "PUBLISHED",
    "WITHDRAWN",
    "PublishedRecord",
    "get_record",
    "new_ref",
    "patient_for_ref",
    "set_state",
]

LINKAGE_RECORD = LinkageRecord.__table__  # type: ignore[attr-defined]
PUBLISHED = "published"
WITHDRAWN = "withdrawn"
OPTED_OUT = "opted_out"


@dataclass(frozen=True, slots=True)
class PublishedRecord:
    """One row of ``linkage_record``."""

    patient_id: str
    ref: str
    key_id: str | None
    digest: str | None
    state: str


def new_ref() -> str:
    """A fresh opaque reference (22 URL-safe characters)."""
    return secrets.token_urlsafe(16)


def get_record(conn: Connection, patient_id: str) -> PublishedRecord | None:
    """The patient's row, if the node ever published them."""
    row = conn.execute(sa.select(LINKAGE_RECORD).where(LINKAGE_RECORD.c.patient_id == patient_id)).first()
    if row is None:
        return None
    v = row._mapping
    return PublishedRecord(v["patient_id"], v["ref"], v["key_id"], v["digest"], v["state"])


def patient_for_ref(conn: Connection, ref: str) -> str | None:
    """The patient a published reference stands for (None when unknown or not published now)."""
    c = LINKAGE_RECORD.c
    return conn.execute(sa.select(c.patient_id).where(c.ref == ref, c.state == PUBLISHED)).scalar_one_or_none()


def set_state(
    conn: Connection, *, patient_id: str, ref: str, state: str, key_id: str | None = None, digest: str | None = None
) -> None:
    """Write the patient's row (insert or update)."""
    values = {"ref": ref, "state": state, "key_id": key_id, "digest": digest, "updated_at": time.time_ns() // 1000}
    updated = conn.execute(LINKAGE_RECORD.update().where(LINKAGE_RECORD.c.patient_id == patient_id).values(**values))
    if not updated.rowcount:
        conn.execute(LINKAGE_RECORD.insert().values(patient_id=patient_id, **values))
