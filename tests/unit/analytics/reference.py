"""What the equality tests share: the issue's fixed models, pooling node tables, the relative error it states.

The unit tests (:mod:`tests.unit.analytics`) and the jobs over the channel
(:mod:`tests.integration.test_analysis_jobs`) fit the same models, so both take them from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

HEART_CENTERS = ("cleveland", "hungarian", "switzerland", "va")
"""Fed-Heart-Disease's hospitals, one node each, in FLamby's center order."""

HEART_FEATURES: list[dict[str, Any]] = [
    {"column": "age"},
    {"column": "sex"},
    {"column": "cp", "levels": [1, 2, 3, 4]},
    {"column": "trestbps"},
    {"column": "chol"},
    {"column": "fbs"},
    {"column": "restecg", "levels": [0, 1, 2]},
    {"column": "thalach"},
    {"column": "exang"},
    {"column": "oldpeak"},
]
"""FLamby's 13 heart features as GLM covariates (cp and restecg one-hot, first level dropped)."""

COX_FEATURES = [
    "age_at_index",
    "race_black or african american",
    "ajcc_pathologic_stage_Stage IIB",
    "ajcc_pathologic_stage_Stage IIIA",
    "ajcc_pathologic_stage_Stage IIIC",
    "ajcc_pathologic_t_T3",
    "ajcc_pathologic_n_N2",
    "prior_malignancy_yes",
    "treatment_or_therapy_yes",
    "morphology_8520/3",
]
"""The TCGA Cox covariates: age, race, stage, tumour size, nodes, history, treatment, histology. Full rank
within regions, and every indicator has events, so the partial likelihood has a finite maximum."""


def pooled(nodes: list[pd.DataFrame]) -> pd.DataFrame:
    """The nodes' rows in one table: what the reference libraries (numpy, statsmodels, lifelines) see."""
    return pd.concat(nodes, ignore_index=True)


def max_relative_error(ours: npt.ArrayLike, reference: npt.ArrayLike) -> float:
    """The largest ``|ours - reference| / |reference|`` over the elements."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b) / np.abs(b)))


def as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable columns as float64 with NaN, the form statsmodels and lifelines take."""
    return frame.astype("Float64").astype(np.float64)


def pooled_with_strata(nodes: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """``columns`` of every node as float64, pooled, with the node's index as the stratum column ``node``."""
    return pd.concat([as_float(n[columns]).assign(node=i) for i, n in enumerate(nodes)], ignore_index=True)
