"""Deterministic synthetic tabular data for tests, benchmarks and the demo (never patient data).

Every site shares one true model, ``logit = x·w + 0.75·x0·x1`` (a non-linear term an MLP can learn), and
draws its own rows from ``seed`` with a site-specific covariate shift, so sites differ the way hospitals
do while a federated model can still learn the common signal.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["N_FEATURES", "make_tabular"]

N_FEATURES: Final[int] = 30
_TRUE_MODEL_SEED: Final[int] = 0x3EDFED


def make_tabular(n: int, seed: int, *, n_features: int = N_FEATURES) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``n`` rows ``(X, y)``: float32 features of width ``n_features``, a 0/1 float32 target; same seed, same rows."""
    if n < 1 or n_features < 2:
        raise ValueError("need at least one row and two features")
    weights = np.random.default_rng(_TRUE_MODEL_SEED).normal(scale=1.5 / np.sqrt(n_features), size=n_features)
    rng = np.random.default_rng(seed)
    shift = rng.normal(scale=0.5, size=n_features)
    x = rng.normal(size=(n, n_features)) + shift
    logits = x @ weights + 0.75 * x[:, 0] * x[:, 1]
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-logits))
    return x.astype(np.float32), y.astype(np.float32)
