"""Helpers the equality tests share: pooling node tables, and the relative error the issue states."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd


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
