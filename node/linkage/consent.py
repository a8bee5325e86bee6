"""Patients' opt-outs, read from FHIR R4 ``Consent`` resources: from record sharing and from research.

The node honours a minimal, documented profile of ``Consent`` (anything else is stored as FHIR and
ignored here). A Consent is an **opt-out** when all of these hold:

- ``status`` is ``active``;
- ``patient.reference`` is ``Patient/<id>`` (a patient of this node);
- ``provision.type`` is ``deny``.

Its purpose decides what the patient opted out of, from ``provision.purpose`` (codes of
``http://terminology.hl7.org/CodeSystem/v3-ActReason``):

- ``TREAT`` or ``ETREAT`` — **sharing**: the record locator. The patient's index entries are
  withdrawn everywhere (``WithdrawRequest(person=True)``), and the node refuses every release of
  their records to another node, even one asked before the withdrawal took effect;
- ``HRESCH`` (or ``CLINTRCH``) — **research**: the patient's rows are left out of what federated jobs
  read (:func:`research_excluded_patient_keys`).

A deny Consent without ``provision.purpose`` opts out of what its ``scope`` says: ``research``
(``http://terminology.hl7.org/CodeSystem/consentscope``) means research, ``patient-privacy`` means
sharing. ``provision.period`` and nested provisions are not evaluated: to end an opt-out, set the
Consent's status to ``inactive`` (or delete it). Example (opt out of record sharing)::

    {"resourceType": "Consent", "status": "active",
     "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                           "code": "patient-privacy"}]},
     "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
     "patient": {"reference": "Patient/123"},
     "provision": {"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                                "code": "TREAT"}]}}

The opt-outs are kept in ``patient_consent``, written in the same transaction as the Consent itself
(:func:`apply_consent`, called by the FHIR write path), so a release check never misses an opt-out
that was already committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from node.store.models import PatientConsent
from node.store.resources import StoredResource

__all__ = [
    "RESEARCH",
    "SHARING",
    "apply_consent",
    "opt_outs",
    "research_excluded_patient_keys",
    "sharing_opted_out",
]

PATIENT_CONSENT = PatientConsent.__table__  # type: ignore[attr-defined]
SHARING = "sharing"
RESEARCH = "research"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
_PURPOSES = {"TREAT": SHARING, "ETREAT": SHARING, "HRESCH": RESEARCH, "CLINTRCH": RESEARCH}
_SCOPES = {"patient-privacy": SHARING, "research": RESEARCH}


def _codes(concept: Any, system: str) -> set[str]:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    if not isinstance(codings, list):
        return set()
    return {
        c["code"]
        for c in codings
        if isinstance(c, Mapping) and isinstance(c.get("code"), str) and c.get("system") in (system, None)
    }


def _patient_id(resource: Mapping[str, Any]) -> str | None:
    patient = resource.get("patient")
    reference = patient.get("reference") if isinstance(patient, Mapping) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        return None
    patient_id = reference.removeprefix("Patient/")
    return patient_id if patient_id and "/" not in patient_id and len(patient_id) <= 64 else None


def opt_outs(resource: Mapping[str, Any]) -> tuple[str | None, set[str]]:
    """``(patient id, purposes)`` a Consent opts out of under the profile above (empty when none)."""
    patient_id = _patient_id(resource)
    provision = resource.get("provision")
    if (
        patient_id is None
        or resource.get("status") != "active"
        or not isinstance(provision, Mapping)
        or provision.get("type") != "deny"
    ):
        return patient_id, set()
    purposes = provision.get("purpose")
    if isinstance(purposes, list) and purposes:
        found = {
            _PURPOSES[p["code"]]
            for p in purposes
            if isinstance(p, Mapping) and p.get("system") in (ACT_REASON, None) and p.get("code") in _PURPOSES
        }
        return patient_id, found
    return patient_id, {_SCOPES[code] for code in _codes(resource.get("scope"), CONSENT_SCOPE) if code in _SCOPES}


def apply_consent(conn: Connection, stored: StoredResource, *, now: int) -> set[str]:
    """Bring ``patient_consent`` in line with one written (or deleted) Consent; the patients it concerns."""
    c = PATIENT_CONSENT.c
    before = set(conn.execute(sa.select(c.patient_id).where(c.consent_id == stored.id)).scalars())
    conn.execute(PATIENT_CONSENT.delete().where(c.consent_id == stored.id))
    if stored.deleted or not stored.content:
        return before
    try:
        resource = orjson.loads(stored.content)
    except orjson.JSONDecodeError:  # pragma: no cover - the store holds validated JSON
        return before
    patient_id, purposes = opt_outs(resource)
    if patient_id is not None and purposes:
        conn.execute(
            PATIENT_CONSENT.insert(),
            [{"consent_id": stored.id, "purpose": p, "patient_id": patient_id, "updated_at": now} for p in purposes],
        )
    return before | ({patient_id} if patient_id is not None else set())


def sharing_opted_out(conn: Connection, patient_id: str) -> bool:
    """Whether the patient has an active opt-out from record sharing."""
    c = PATIENT_CONSENT.c
    query = sa.select(c.consent_id).where(c.patient_id == patient_id, c.purpose == SHARING).limit(1)
    return conn.execute(query).first() is not None


def research_excluded_patient_keys(engine: Engine | Connection) -> set[str]:
    """The patient ids (view rows' ``patient_key``) that federated jobs must not read: research opt-outs."""
    c = PATIENT_CONSENT.c
    query = sa.select(c.patient_id).where(c.purpose == RESEARCH).distinct()
    if isinstance(engine, Connection):
        return set(engine.execute(query).scalars())
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())
