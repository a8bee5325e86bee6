"""Registering and revoking researchers: what ``medfed coordinator researcher add|list|revoke`` does.

Adding a researcher (run by the coordinator's admin, against its data directory) registers their public
key, issues their membership certificate — researcher name, public key, studies, validity, serial —
signed with the network-admin key, and creates an API token of role ``researcher`` bound to them (shown
once). Revoking one marks them revoked, revokes their token, and signs a new revocation list (the next
serial, naming every revoked researcher and key, and every revoked node: :mod:`coordinator.revocations`),
which the coordinator hands to every node with the next poll answer or heartbeat (``docs/trust.md``).

These functions take the network-admin key as an argument, so a network that keeps it offline passes it
from wherever it lives; the running coordinator never needs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from common.crypto import SigningKey, VerifyKey
from common.errors import InputError
from common.trust import issue_membership
from common.trust.membership import check_name
from coordinator.revocations import sign_next_list
from coordinator.store import researchers as store
from coordinator.store.db import now_micros, write_transaction
from coordinator.store.tokens import Role, create_token, revoke_token

__all__ = ["DEFAULT_VALID_DAYS", "AddedResearcher", "add_researcher", "revoke_researcher"]

DEFAULT_VALID_DAYS = 365
_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class AddedResearcher:
    """A new researcher: their record, their certificate's serial and their API token (shown once)."""

    record: store.ResearcherRecord
    serial: int
    token: str


def add_researcher(
    engine: Engine,
    admin: SigningKey,
    *,
    name: str,
    public_key: VerifyKey,
    studies: Iterable[str],
    valid_days: int = DEFAULT_VALID_DAYS,
    now_s: int | None = None,
) -> AddedResearcher:
    """Register ``name`` with ``public_key`` in ``studies``; InputError for a bad name or study, ConflictError
    when the name or key is taken."""
    check_name(name, "researcher")
    if not 1 <= valid_days <= 3650:
        raise InputError(detail="a membership is valid for 1 to 3650 days", hints=("valid_days: range",))
    issued_at = int(now_micros() // 1_000_000) if now_s is None else now_s
    expires_at = issued_at + valid_days * _DAY_S
    with write_transaction(engine) as conn:  # the token, the researcher and the certificate, or none of them
        serial = store.next_membership_serial(conn)
        certificate = issue_membership(
            admin,
            researcher=name,
            public_key=public_key,
            studies=list(studies),
            issued_at=issued_at,
            expires_at=expires_at,
            serial=serial,
        )
        token_id, token = create_token(conn, role=Role.RESEARCHER, label=f"researcher {name}")
        record = store.register_researcher(
            conn, name=name, public_key=public_key.to_text(), key_id=public_key.fingerprint(), token_id=token_id
        )
        store.add_membership(
            conn,
            serial=serial,
            researcher=name,
            certificate=certificate,
            issued_at=issued_at * 1_000_000,
            expires_at=expires_at * 1_000_000,
        )
    return AddedResearcher(record=record, serial=serial, token=token)


def revoke_researcher(engine: Engine, admin: SigningKey, *, name: str) -> int:
    """Revoke ``name`` (their token too) and sign the next revocation list; its serial.

    NotFoundError for no such researcher. Revoking one already revoked signs no new list and returns the
    current serial.
    """
    now = now_micros()
    with write_transaction(engine) as conn:
        changed = store.mark_revoked(conn, name=name, now=now)
        record = store.get_researcher(conn, name=name)
        if changed:
            revoke_token(conn, token_id=record.token_id)
        serial = store.next_revocation_serial(conn)
        if not changed and serial > 1:
            return serial - 1
        return sign_next_list(conn, admin, now=now)  # the whole list: revoked nodes stay on it
