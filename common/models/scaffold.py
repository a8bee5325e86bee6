"""What the coordinator and the nodes agree on for SCAFFOLD: the names of the two control-variate records.

SCAFFOLD (Karimireddy et al., 2020, https://arxiv.org/abs/1910.06378) corrects each node's local steps
with control variates. A ``train`` instruction of a Scaffold job carries, next to ``"arrays"`` (the global
model x), the server control variate c as the ArrayRecord :data:`SCAFFOLD_CONTROL` (one array per model
parameter, named and shaped as in the model's ``state_dict``). The node keeps its own c_i in the job's
context, steps ``y <- y - lr * (g - c_i + c)``, and answers, next to its model, the change of its control
variate ``delta c_i = c_i+ - c_i`` as the ArrayRecord :data:`SCAFFOLD_DELTA`, where (option II)
``c_i+ = c_i - c + (x - y) / (K * lr)`` for K local steps at learning rate lr. The instruction's config
also lists (:data:`SCAFFOLD_NODES`, :data:`SCAFFOLD_ROUNDS`) the last round whose delta c_i the
coordinator aggregated, per node: a node whose last training was not aggregated (an abandoned attempt)
rolls its c_i back before it trains. The coordinator's side is
:class:`coordinator.federation.strategies.scaffold.Scaffold`; the node's is
:mod:`node.federation.apps.learning.scaffold`.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SCAFFOLD_CONTROL", "SCAFFOLD_DELTA", "SCAFFOLD_NODES", "SCAFFOLD_ROUNDS"]

SCAFFOLD_CONTROL: Final[str] = "scaffold-control"
"""ArrayRecord of a train instruction: the server control variate c."""
SCAFFOLD_DELTA: Final[str] = "scaffold-delta"
"""ArrayRecord of a train reply: the change of the node's control variate, ``c_i+ - c_i``."""
SCAFFOLD_NODES: Final[str] = "scaffold-nodes"
"""Config entry of a train instruction: the nodes whose control changes the coordinator has aggregated."""
SCAFFOLD_ROUNDS: Final[str] = "scaffold-rounds"
"""Config entry of a train instruction: for each of :data:`SCAFFOLD_NODES`, the last round aggregated."""
