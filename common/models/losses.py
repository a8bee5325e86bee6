"""Training losses of the registry's models, one per outcome kind; each returns a scalar tensor.

:func:`cox_partial_likelihood_loss` is the Cox loss as FLamby's Fed-TCGA-BRCA benchmark defines it on a
minibatch (read in owkin/FLamby ``flamby/datasets/fed_tcga_brca/loss.py``; written here from its
definition): the batch is ordered by decreasing time (a stable order, so tied times keep the batch's
order), each subject's risk set is everyone before it in that order (itself included), and the loss is

    mean over the batch of  -E_i * (s_i - log sum_{j <= i} exp(s_j))

with the scores shifted by their maximum first (the shift cancels; it only keeps ``exp`` finite). The
mean is over all subjects of the batch, censored ones included (they contribute 0), as FLamby's is.
Tied event times are handled as in Breslow's approximation except that, among tied subjects, the risk
set of the earlier one in batch order excludes the later ones: FLamby's exact behaviour.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["binary_cross_entropy_loss", "cox_partial_likelihood_loss"]


def binary_cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of ``labels`` (0/1) under ``sigmoid(logits)``; shapes ``(n,)`` or ``(n, 1)``."""
    return nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), labels.reshape(-1))


def cox_partial_likelihood_loss(scores: torch.Tensor, events: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """FLamby's minibatch Cox loss of log-risk ``scores`` for ``events`` (1 = event, 0 = censored) at ``times``."""
    scores, events, times = scores.reshape(-1), events.reshape(-1), times.reshape(-1)
    if not scores.shape == events.shape == times.shape:
        raise ValueError("scores, events and times must have one value per subject")
    order = torch.argsort(-times, stable=True)
    ordered = scores[order]
    shifted = ordered - ordered.max()
    log_risk_set = torch.logcumsumexp(shifted, dim=0)
    return (-(shifted - log_risk_set) * events[order]).mean()
