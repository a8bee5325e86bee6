"""The built-in ``learning`` app: a node's local work in a federated learning job, on its own data.

Replies carry ``"arrays"`` (``train``) and ``"metrics"``:

* ``train``: ``train_loss`` (mean over the round's minibatches), ``num-examples`` (the node's training
  rows: the weight of its update, as in FLamby); ``dp_epsilon``/``dp_delta`` and no loss under DP-SGD;
  a Scaffold round adds ``delta c_i`` (:data:`~common.models.scaffold.SCAFFOLD_DELTA`);
* ``evaluate`` on the node's local test split (:mod:`.evaluation`).

One module per concern, each with the state it keeps in the job's ``context.state``:

* :mod:`.instruction`: reading an instruction, and the refusal reply (location-only hints);
* :mod:`.data`: the job's rows, prepared once and pinned to the task and the data snapshot;
* :mod:`.training`: the local steps and the data iterator that persists across rounds (and rewinds a
  round asked again);
* :mod:`.scaffold`: SCAFFOLD's control variate c_i and the corrected steps;
* :mod:`.dp`: record-level DP-SGD, charged to the node's epsilon ledger before any work;
* :mod:`.secure`: secure aggregation, round keys and the masked update;
* :mod:`.evaluation`: the local test metrics;
* :mod:`.app`: :func:`learning_app`, which puts them together.

**Refusals** (a task that does not fit this node's data, another task than the job's first, data that
changed, a budget that would be overspent, a secure round it cannot take part in, a Scaffold round for a
task that cannot run one) are Flower error replies with code
:data:`~common.models.task.LEARNING_ERROR_CODE` and a catalog code with location-only hints; the detail
stays in this node's log.
"""

from __future__ import annotations

from node.federation.apps.learning.app import learning_app
from node.federation.apps.learning.data import DATA_KEY, PIN_KEY
from node.federation.apps.learning.dp import DP_KEY, EpsilonLedger
from node.federation.apps.learning.scaffold import SCAFFOLD_KEY, SCAFFOLD_ROUND_KEY
from node.federation.apps.learning.secure import SECURE_KEY
from node.federation.apps.learning.training import ITERATOR_KEY, epoch_seed

__all__ = [
    "DATA_KEY",
    "DP_KEY",
    "ITERATOR_KEY",
    "PIN_KEY",
    "SCAFFOLD_KEY",
    "SCAFFOLD_ROUND_KEY",
    "SECURE_KEY",
    "EpsilonLedger",
    "epoch_seed",
    "learning_app",
]
