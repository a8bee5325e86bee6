"""A researcher's membership certificate: the network admin vouches for a key, a name and studies.

Body (``type: medfed.membership.v1``)::

    {"researcher": "alice", "public_key": "<base64url Ed25519>", "studies": ["diabetes-2026"],
     "issued_at": 1790000000, "expires_at": 1821536000, "serial": 7}

Times are unix seconds. The coordinator issues it when a researcher is registered
(``medfed coordinator researcher add``) and sends it with every message of that researcher's jobs; a
node believes it only when the network-admin key it pinned at enrolment signed it and it has not
expired. Anything wrong with a certificate is :attr:`~common.errors.ErrorCode.RESEARCHER_UNKNOWN`: to a
node, a researcher without a valid certificate is no researcher of this network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from common.crypto import SigningKey, VerifyKey
from common.errors import AccessError, ErrorCode, InputError
from common.trust.documents import open_document, sign_document

__all__ = ["MEMBERSHIP_TYPE", "NAME_PATTERN", "Membership", "check_name", "issue_membership", "verify_membership"]

MEMBERSHIP_TYPE = "medfed.membership.v1"
#: Researcher and study names: what a node's policy accepts as a name (``node/policy/jobs.py``), shorter.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,63}")
MAX_STUDIES = 64
_KEYS = frozenset({"type", "researcher", "public_key", "studies", "issued_at", "expires_at", "serial"})


def check_name(value: object, what: str) -> str:
    """``value`` when it is a valid researcher or study name; InputError naming ``what`` otherwise."""
    if not isinstance(value, str) or NAME_PATTERN.fullmatch(value) is None:
        raise InputError(
            detail=f"{what} is not a valid name", hints=(f"{what}: letters, digits and ._@:+- (64 at most)",)
        )
    return value


@dataclass(frozen=True, slots=True)
class Membership:
    """A verified certificate: who the researcher is, their key, their studies and its validity."""

    researcher: str
    public_key: VerifyKey
    studies: frozenset[str]
    issued_at: int
    expires_at: int
    serial: int

    @property
    def key_id(self) -> str:
        """The researcher key's fingerprint, as signed jobs name it."""
        return self.public_key.fingerprint()


def issue_membership(
    admin: SigningKey,
    *,
    researcher: str,
    public_key: VerifyKey,
    studies: Iterable[str],
    issued_at: int,
    expires_at: int,
    serial: int,
) -> dict[str, Any]:
    """The certificate, signed by the network-admin key; InputError for a bad name or an empty study list."""
    names = sorted({check_name(study, "study") for study in studies})
    if not names or len(names) > MAX_STUDIES:
        raise InputError(detail=f"a membership names 1 to {MAX_STUDIES} studies", hints=("studies: count",))
    if expires_at <= issued_at:
        raise InputError(detail="a membership expires after it is issued", hints=("expires_at: order",))
    body = {
        "researcher": check_name(researcher, "researcher"),
        "public_key": public_key.to_text(),
        "studies": names,
        "issued_at": int(issued_at),
        "expires_at": int(expires_at),
        "serial": int(serial),
    }
    return sign_document(admin, MEMBERSHIP_TYPE, body)


def _int(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AccessError(ErrorCode.RESEARCHER_UNKNOWN, detail=f"membership {key} is not a time", hints=("membership",))
    return value


def verify_membership(document: object, admin: VerifyKey, *, now: float, skew_s: float = 300.0) -> Membership:
    """The membership ``admin`` signed, valid at ``now`` (unix seconds, ``skew_s`` of clock skew allowed before
    its start); AccessError(RESEARCHER_UNKNOWN) otherwise."""
    body = open_document(document, MEMBERSHIP_TYPE, admin, ErrorCode.RESEARCHER_UNKNOWN)
    try:
        if set(body) != _KEYS:
            raise InputError(detail="membership keys")
        studies = body["studies"]
        if not isinstance(studies, list) or not studies:
            raise InputError(detail="membership studies")
        membership = Membership(
            researcher=check_name(body["researcher"], "researcher"),
            public_key=VerifyKey.from_text(str(body["public_key"])),
            studies=frozenset(check_name(study, "study") for study in studies),
            issued_at=_int(body, "issued_at"),
            expires_at=_int(body, "expires_at"),
            serial=_int(body, "serial"),
        )
    except InputError:
        raise AccessError(
            ErrorCode.RESEARCHER_UNKNOWN, detail="the membership is malformed", hints=("membership",)
        ) from None
    if not membership.issued_at - skew_s <= now < membership.expires_at:
        raise AccessError(
            ErrorCode.RESEARCHER_UNKNOWN,
            detail="the membership is expired or not yet valid",
            hints=("membership: expired",),
        )
    return membership
