"""The node's release step for analysis jobs: disclosure control, differential privacy, secure aggregation.

Every partial an ``analysis`` job gets from this node passes here first (the seam is
:mod:`node.federation.disclosure`). Modules:

- :mod:`.config` — ``disclosure.yaml``: the policy and the ledger budgets;
- :mod:`.records` — which record each row is (the identity its noise derives from);
- :mod:`.cells` — count, histogram, crosstab: suppression and cell-key noise, DP, secure vectors;
- :mod:`.statistics` — moments, quantiles, Kaplan-Meier, GLM and Cox;
- :mod:`.policy` — :class:`NodeRelease`: admission (the epsilon ledger) and the choice of rules.
"""

from node.federation.release.config import DISCLOSURE_FILE, LedgerConfig, apply_ledger_config, read_disclosure_file
from node.federation.release.policy import Admission, NodeRelease

__all__ = [
    "DISCLOSURE_FILE",
    "Admission",
    "LedgerConfig",
    "NodeRelease",
    "apply_ledger_config",
    "read_disclosure_file",
]
