"""This node's vector for a ``distinct_count`` job: the job-salted bitmap of the cohort's persons.

The analysis app asks for it at the job's first step (:mod:`common.analytics.distinct` has the
protocol): the cohort's rows name their patients in the ``patient`` column; their Patient resources
give the person tokens under the network linkage key (:func:`node.linkage.union.cohort_sketch`, which
leaves out deleted patients and research opt-outs), and the salt is derived from that key and the job
(its id and task digest, the same at every node), so the coordinator cannot tell which person a bucket
stands for. The bitmap leaves the node only masked for the secure sum. The node declares its
disclosure rules' minimum cell size, which the coordinator's suppression of the total honours.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from common.analytics.distinct import BITMAP_MAX, DistinctCountParams
from common.analytics.params import parse_params
from common.errors import ErrorCode, InputError
from common.linkage import LinkageKeyProvider
from common.privacy.policy import DisclosurePolicy
from node.federation.apps.analysis import PersonSketch, ReleaseStep, SecureVector
from node.linkage.union import cohort_sketch

__all__ = ["distinct_sketcher", "patient_ids"]

_REFERENCE_PREFIX = "Patient/"


def patient_ids(rows: pd.DataFrame, column: str) -> list[str]:
    """The distinct patient ids of the cohort's ``column`` (ids or ``Patient/<id>`` references), in order."""
    if column not in rows.columns:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS, detail="no such patient column", hints=["params.patient: no such column"]
        )
    ids: dict[str, None] = {}
    for value in rows[column].dropna():
        text = str(value)
        ids[text.removeprefix(_REFERENCE_PREFIX)] = None
    return list(ids)


def distinct_sketcher(engine: Engine, keys: LinkageKeyProvider, policy: DisclosurePolicy) -> PersonSketch:
    """The sketcher over this node's store and linkage key, declaring ``policy``'s minimum cell size."""

    min_cell = policy.min_cell if policy.enabled else 1

    def sketch(step: ReleaseStep) -> SecureVector:
        params = parse_params(DistinctCountParams, step.task.params)
        privacy = step.task.privacy
        digest = step.task.digest()
        bitmap = cohort_sketch(
            engine,
            keys,
            patient_ids(step.rows, params.patient),
            job_id=privacy.job if privacy is not None and privacy.job else digest,
            spec_digest=digest,
            buckets=params.buckets,
            dummy_rate=params.dummy_rate,
        )
        disclosure: dict[str, Any] = {
            "method": "union-bitmap",
            "parameters": {"buckets": params.buckets, "dummy_rate": params.dummy_rate, "min_cell": min_cell},
            "secure_aggregation": True,
        }
        return SecureVector(
            values=[int(v) for v in bitmap],
            max_value=BITMAP_MAX,
            min_cell=min_cell,
            disclosure=disclosure,
        )

    return sketch
