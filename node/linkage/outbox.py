"""The write-path hook: patients whose index entry must change are queued in the writing transaction.

:func:`note_changes` is called by :class:`node.fhir.service.FhirService` after every create, update
and delete (single writes, transactions, batches and ingest alike), inside the transaction that
writes the resources: a Patient written or deleted queues that patient; a Consent written or deleted
updates ``patient_consent`` (:func:`node.linkage.consent.apply_consent`) and queues the patients it
concerns. Queueing is an idempotent insert into ``linkage_outbox``, so the FHIR write costs one small
statement and never waits for the coordinator; the publisher (:mod:`node.linkage.publisher`) drains
the queue and is woken by :data:`OUTBOX_CHANGED` (in this process) or its own polling (changes made
by another process: the CLI's ingest, a key rotation).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from node.linkage.consent import apply_consent
from node.store.models import LinkageOutbox, Resource
from node.store.resources import StoredResource

__all__ = ["OUTBOX_CHANGED", "done", "enqueue", "enqueue_all_patients", "note_changes", "pending"]

OUTBOX = LinkageOutbox.__table__  # type: ignore[attr-defined]
RESOURCE = Resource.__table__  # type: ignore[attr-defined]
#: Set whenever this process queues a patient; the publisher waits on it.
OUTBOX_CHANGED = threading.Event()


def _now() -> int:
    return time.time_ns() // 1000


def enqueue(conn: Connection, patient_ids: Iterable[str], *, now: int | None = None) -> int:
    """Queue patients (a patient already queued gets the later time); how many were given."""
    at = _now() if now is None else now
    rows = [{"patient_id": patient_id, "queued_at": at} for patient_id in dict.fromkeys(patient_ids)]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(OUTBOX)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["patient_id"], set_={"queued_at": statement.excluded.queued_at}
        ),
        rows,
    )
    OUTBOX_CHANGED.set()
    return len(rows)


def note_changes(conn: Connection, resources: Sequence[StoredResource]) -> None:
    """The FHIR write path's hook (see the module docstring)."""
    patients: list[str] = []
    now = _now()
    for stored in resources:
        if stored.resource_type == "Patient":
            patients.append(stored.id)
        elif stored.resource_type == "Consent":
            patients.extend(apply_consent(conn, stored, now=now))
    if patients:
        enqueue(conn, patients, now=now)


def enqueue_all_patients(conn: Connection) -> int:
    """Queue every current Patient (after a key rotation, or to publish a node's existing patients)."""
    ids = conn.execute(
        sa.select(RESOURCE.c.id).where(RESOURCE.c.resource_type == "Patient", RESOURCE.c.deleted.is_(False))
    ).scalars()
    total = 0
    batch: list[str] = []
    for patient_id in ids:
        batch.append(patient_id)
        if len(batch) >= 1000:
            total += enqueue(conn, batch)
            batch = []
    return total + enqueue(conn, batch)


def pending(conn: Connection, *, limit: int) -> list[tuple[str, int]]:
    """The oldest queued ``(patient id, queued at)`` pairs."""
    query = sa.select(OUTBOX.c.patient_id, OUTBOX.c.queued_at).order_by(OUTBOX.c.queued_at).limit(limit)
    return [(row[0], int(row[1])) for row in conn.execute(query)]


def done(conn: Connection, handled: Collection[tuple[str, int]]) -> None:
    """Remove handled entries, unless a patient was queued again since (then it stays for the next pass)."""
    for patient_id, queued_at in handled:
        conn.execute(OUTBOX.delete().where(OUTBOX.c.patient_id == patient_id, OUTBOX.c.queued_at <= queued_at))
