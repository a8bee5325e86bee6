"""Researchers, their membership certificates, the revocation lists and the signed document of each job.

The signing (of certificates and revocation lists, by the network-admin key) happens in
:mod:`coordinator.researchers`; this module only keeps what was signed. A researcher is bound to one API
token of role ``researcher``: a job submitted with that token must be signed with the researcher's key.
Revocation lists are numbered by a serial that only grows (the primary key, chosen as the highest plus
one in the writing transaction), and the one with the highest serial is the network's current list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from common.errors import ConflictError, NotFoundError
from coordinator.store.db import Db, now_micros, reading, writing
from coordinator.store.models import JobSignature, Researcher, ResearcherMembership, RevocationList

__all__ = [
    "ResearcherRecord",
    "add_membership",
    "current_membership",
    "current_revocations",
    "get_researcher",
    "keep_job_signature",
    "list_researchers",
    "mark_revoked",
    "next_membership_serial",
    "next_revocation_serial",
    "register_researcher",
    "researcher_for_token",
    "revoked_researchers",
    "save_revocations",
    "signed_job_of",
]

RESEARCHER: sa.Table = Researcher.__table__  # type: ignore[attr-defined]
MEMBERSHIP: sa.Table = ResearcherMembership.__table__  # type: ignore[attr-defined]
REVOCATION_LIST: sa.Table = RevocationList.__table__  # type: ignore[attr-defined]
JOB_SIGNATURE: sa.Table = JobSignature.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ResearcherRecord:
    """A registered researcher (their key as base64url text, and its fingerprint)."""

    name: str
    public_key: str
    key_id: str
    token_id: int
    created_at: int
    revoked_at: int | None


def _record(row: Any) -> ResearcherRecord:
    return ResearcherRecord(
        name=row.name,
        public_key=row.public_key,
        key_id=row.key_id,
        token_id=int(row.token_id),
        created_at=int(row.created_at),
        revoked_at=None if row.revoked_at is None else int(row.revoked_at),
    )


def register_researcher(db: Db, *, name: str, public_key: str, key_id: str, token_id: int) -> ResearcherRecord:
    """Register a researcher; ConflictError when the name or the key is registered already."""
    now = now_micros()
    with writing(db) as conn:
        taken = conn.execute(
            sa.select(RESEARCHER.c.name).where(sa.or_(RESEARCHER.c.name == name, RESEARCHER.c.key_id == key_id))
        ).first()
        if taken is not None:
            raise ConflictError(detail="a researcher with this name or key exists", hints=("researcher: exists",))
        conn.execute(
            RESEARCHER.insert().values(
                name=name, public_key=public_key, key_id=key_id, token_id=token_id, created_at=now
            )
        )
    return ResearcherRecord(name, public_key, key_id, token_id, now, None)


def get_researcher(db: Db, *, name: str) -> ResearcherRecord:
    """The researcher named ``name``; NotFoundError when there is none."""
    with reading(db) as conn:
        row = conn.execute(sa.select(RESEARCHER).where(RESEARCHER.c.name == name)).first()
    if row is None:
        raise NotFoundError(detail="no such researcher")
    return _record(row)


def researcher_for_token(db: Db, *, token_id: int) -> ResearcherRecord | None:
    """The researcher bound to an API token (None: the token belongs to no researcher)."""
    with reading(db) as conn:
        row = conn.execute(sa.select(RESEARCHER).where(RESEARCHER.c.token_id == token_id)).first()
    return None if row is None else _record(row)


def list_researchers(db: Db) -> list[ResearcherRecord]:
    """Every registered researcher, by name."""
    with reading(db) as conn:
        rows = conn.execute(sa.select(RESEARCHER).order_by(RESEARCHER.c.name)).all()
    return [_record(row) for row in rows]


def mark_revoked(db: Db, *, name: str, now: int) -> bool:
    """Mark a researcher revoked; False when they were revoked already (NotFoundError for no such researcher)."""
    get_researcher(db, name=name)
    with writing(db) as conn:
        result = conn.execute(
            RESEARCHER.update()
            .where(RESEARCHER.c.name == name, RESEARCHER.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return bool(result.rowcount)


def revoked_researchers(db: Db) -> list[ResearcherRecord]:
    """Every revoked researcher (what the next revocation list names)."""
    with reading(db) as conn:
        rows = conn.execute(sa.select(RESEARCHER).where(RESEARCHER.c.revoked_at.is_not(None))).all()
    return [_record(row) for row in rows]


def add_membership(
    db: Db, *, serial: int, researcher: str, certificate: dict[str, Any], issued_at: int, expires_at: int
) -> None:
    """Keep a membership certificate issued to ``researcher`` (times in epoch microseconds)."""
    with writing(db) as conn:
        conn.execute(
            MEMBERSHIP.insert().values(
                serial=serial,
                researcher=researcher,
                certificate=orjson.dumps(certificate).decode(),
                issued_at=issued_at,
                expires_at=expires_at,
            )
        )


def next_membership_serial(db: Db) -> int:
    """The serial the next certificate will get (one more than the highest so far)."""
    with reading(db) as conn:
        highest = conn.execute(sa.select(sa.func.max(MEMBERSHIP.c.serial))).scalar()
    return int(highest or 0) + 1


def current_membership(db: Db, *, researcher: str, now: int | None = None) -> dict[str, Any] | None:
    """The newest certificate of ``researcher`` that has not expired (None: none)."""
    at = now_micros() if now is None else now
    with reading(db) as conn:
        row = conn.execute(
            sa.select(MEMBERSHIP.c.certificate)
            .where(MEMBERSHIP.c.researcher == researcher, MEMBERSHIP.c.expires_at > at)
            .order_by(MEMBERSHIP.c.serial.desc())
            .limit(1)
        ).first()
    return None if row is None else dict(orjson.loads(row[0]))


def next_revocation_serial(db: Db) -> int:
    """The serial the next revocation list will get."""
    with reading(db) as conn:
        highest = conn.execute(sa.select(sa.func.max(REVOCATION_LIST.c.serial))).scalar()
    return int(highest or 0) + 1


def save_revocations(db: Db, *, serial: int, document: dict[str, Any]) -> None:
    """Keep a signed revocation list; ConflictError when its serial is taken (two revocations at once)."""
    with writing(db) as conn:
        if conn.execute(sa.select(REVOCATION_LIST.c.serial).where(REVOCATION_LIST.c.serial >= serial)).first():
            raise ConflictError(detail="a revocation list with this serial exists; revoke again")
        conn.execute(
            REVOCATION_LIST.insert().values(
                serial=serial, document=orjson.dumps(document).decode(), created_at=now_micros()
            )
        )


def current_revocations(db: Db) -> dict[str, Any] | None:
    """The revocation list with the highest serial (None before the first revocation)."""
    with reading(db) as conn:
        row = conn.execute(
            sa.select(REVOCATION_LIST.c.document).order_by(REVOCATION_LIST.c.serial.desc()).limit(1)
        ).first()
    return None if row is None else dict(orjson.loads(row[0]))


def keep_job_signature(db: Db, *, job_id: str, researcher: str, digest: str, document: dict[str, Any]) -> None:
    """Keep the signed document a job was submitted with; ConflictError when that document was used already."""
    with writing(db) as conn:
        if conn.execute(sa.select(JOB_SIGNATURE.c.job_id).where(JOB_SIGNATURE.c.digest == digest)).first():
            raise ConflictError(detail="this signed job was submitted already", hints=("signed_job: used",))
        conn.execute(
            JOB_SIGNATURE.insert().values(
                job_id=job_id, researcher=researcher, digest=digest, document=orjson.dumps(document).decode()
            )
        )


def signed_job_of(db: Db, *, job_id: str) -> tuple[str, dict[str, Any]] | None:
    """The researcher and the signed document of a job (None: the job was not submitted signed)."""
    with reading(db) as conn:
        row = conn.execute(
            sa.select(JOB_SIGNATURE.c.researcher, JOB_SIGNATURE.c.document).where(JOB_SIGNATURE.c.job_id == job_id)
        ).first()
    return None if row is None else (str(row[0]), dict(orjson.loads(row[1])))
