"""The bodies of the locator's two messages (inside the sealed envelopes of :mod:`common.locator.envelopes`).

A **request** names the record (the holder's opaque reference from the lookup), the purpose of use
(``TREAT``: v3-ActReason, treatment) and the asking node's demographics of the patient, so the holder
can check it is the same person before it releases anything. A **reply** says ``released`` with a
searchset Bundle, or ``refused`` with a reason code (:class:`Refusal`).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from enum import StrEnum
from typing import Any

from common.errors import ErrorCode, InputError
from common.linkage import Demographics

__all__ = [
    "PURPOSES",
    "REPLY",
    "REQUEST",
    "TREATMENT",
    "Refusal",
    "demographics_from_wire",
    "demographics_to_wire",
]

REQUEST = "request"
REPLY = "reply"
TREATMENT = "TREAT"
#: Purposes of use a clinician may give (API word -> v3-ActReason code); only treatment is released.
PURPOSES = {"treatment": TREATMENT}
_FIELDS = {field.name for field in fields(Demographics)}
_MAX_FIELD = 200


class Refusal(StrEnum):
    """Why a holding node did not release (the reason codes both sides audit)."""

    KEY_NOT_CERTIFIED = "key_not_certified"  # the asker's key is not certified by the network admin
    NODE_REVOKED = "node_revoked"  # the other node is on the network admin's revocation list
    UNKNOWN_RECORD = "unknown_record"  # no published record under that reference (withdrawn, deleted)
    DEMOGRAPHICS_MISMATCH = "demographics_mismatch"  # the holder's record is not the same person
    CONSENT = "consent"  # the patient opted out of record sharing
    PURPOSE = "purpose_not_allowed"  # a purpose of use other than treatment
    MALFORMED = "malformed"  # the request could not be read
    ERROR = "error"  # the holder failed while answering


def demographics_to_wire(demographics: Demographics) -> dict[str, str]:
    """The present fields of ``demographics`` as a JSON object."""
    return {name: value for name, value in asdict(demographics).items() if isinstance(value, str) and value}


def demographics_from_wire(value: Any) -> Demographics:
    """Demographics from a request; InputError for anything but an object of known short text fields."""
    if not isinstance(value, dict) or not set(value) <= _FIELDS:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="request demographics are not an object of known fields")
    if not all(isinstance(v, str) and len(v) <= _MAX_FIELD for v in value.values()):
        raise InputError(ErrorCode.INVALID_REQUEST, detail="request demographics hold a non-text or long value")
    return Demographics(**value)
