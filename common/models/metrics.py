"""Evaluation metrics of the registry's models, in numpy, the same on a node and in a benchmark harness.

:func:`concordance_index` is Harrell's C as ``lifelines.utils.concordance_index(times, predicted, events)``
computes it (lifelines is a test dependency, not a node one; a test checks the two agree): a pair is
admissible when the subject with the shorter time had the event, or when both times are equal and only
that subject had the event; it is concordant when the predicted survival is longer for the subject that
lived longer, and half-concordant when the predictions tie. FLamby scores a Cox model with
``concordance_index(T, -risk, E)``: :func:`risk_concordance_index` does exactly that.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["admissible_pairs", "binary_accuracy", "concordance_index", "risk_concordance_index"]


def binary_accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Share of ``labels`` (0/1) equal to ``sigmoid(logit) > 0.5``, i.e. ``logit > 0``."""
    predicted = np.asarray(logits, dtype=np.float64).reshape(-1) > 0
    truth = np.asarray(labels, dtype=np.float64).reshape(-1) > 0.5
    if predicted.shape != truth.shape or predicted.size == 0:
        raise ValueError("need one logit per label, and at least one")
    return float(np.mean(predicted == truth))


def _admissible(t: NDArray[np.float64], e: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``[i, j]``: the i-th subject with an event and subject j form an admissible pair."""
    t_i = t[e][:, None]
    admissible: NDArray[np.bool_] = (t[None, :] > t_i) | ((t[None, :] == t_i) & ~e[None, :])
    return admissible


def admissible_pairs(times: ArrayLike, events: ArrayLike) -> int:
    """How many pairs :func:`concordance_index` can compare (0: the index is undefined)."""
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    e = np.asarray(events, dtype=np.float64).reshape(-1) > 0
    return int(_admissible(t, e).sum())


def concordance_index(times: ArrayLike, predicted: ArrayLike, events: ArrayLike) -> float:
    """Harrell's C of ``predicted`` survival (longer = larger) against observed ``times`` and ``events``.

    Raises ``ValueError`` when no pair is admissible (no event, or every event tied with every other time).
    """
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    p = np.asarray(predicted, dtype=np.float64).reshape(-1)
    e = np.asarray(events, dtype=np.float64).reshape(-1) > 0
    if not t.shape == p.shape == e.shape:
        raise ValueError("need one time, prediction and event flag per subject")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("times and predictions must be finite")
    admissible = _admissible(t, e)  # [i, j]: the i-th death and subject j, who outlived it
    p_i = p[e][:, None]
    pairs = int(admissible.sum())
    if pairs == 0:
        raise ValueError("no admissible pairs")
    correct = int((admissible & (p[None, :] > p_i)).sum())
    tied = int((admissible & (p[None, :] == p_i)).sum())
    return (correct + tied / 2) / pairs


def risk_concordance_index(times: ArrayLike, risk: ArrayLike, events: ArrayLike) -> float:
    """Harrell's C of a risk score (higher risk = shorter survival): ``concordance_index(times, -risk, events)``."""
    return concordance_index(times, -np.asarray(risk, dtype=np.float64), events)
