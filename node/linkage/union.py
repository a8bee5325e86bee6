"""A node's share of a de-duplicated count: the job-salted bitmap of its cohort's persons.

The ``distinct_count`` analysis (:mod:`node.federation.apps.distinct`) calls :func:`cohort_sketch` with
the cohort's patient ids (deleted patients and research opt-outs,
:func:`node.linkage.consent.research_excluded_patient_keys`, are left out here) and masks the result
with :mod:`common.privacy.secure_sum`
(modulus :data:`common.locator.union_count.MODULUS_BITS`); the coordinator estimates the union with
:func:`common.locator.union_count.union_estimate`. See :mod:`common.locator.union_count` for what
this reveals and what it costs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import orjson
from sqlalchemy.engine import Engine

from common.linkage import LinkageKeyProvider, from_fhir_patient, tokens_for
from common.locator.union_count import job_salt, node_sketch, person_token
from node.linkage.consent import research_excluded_patient_keys
from node.store.resources import get_many

__all__ = ["cohort_sketch"]

_BATCH = 1_000


def cohort_sketch(
    engine: Engine,
    keys: LinkageKeyProvider,
    patient_ids: Iterable[str],
    *,
    job_id: str,
    spec_digest: str,
    buckets: int,
    dummy_rate: float = 0.0,
) -> npt.NDArray[np.uint64]:
    """The bitmap of the cohort's persons for this job (unmasked: mask it before it leaves the node)."""
    key = keys.current()
    person_tokens: list[bytes] = []
    ids = list(dict.fromkeys(patient_ids))
    with engine.connect() as conn:
        excluded = research_excluded_patient_keys(conn)
        ids = [patient_id for patient_id in ids if patient_id not in excluded]
        for start in range(0, len(ids), _BATCH):
            found = get_many(conn, (("Patient", patient_id) for patient_id in ids[start : start + _BATCH]))
            for stored in found.values():
                if stored.deleted:
                    continue
                token = person_token(tokens_for(from_fhir_patient(orjson.loads(stored.content)), key))
                if token is not None:
                    person_tokens.append(token)
    salt = job_salt(key, job_id=job_id, spec_digest=spec_digest)
    return node_sketch(person_tokens, salt=salt, buckets=buckets, dummy_rate=dummy_rate)
