"""Disclosure control, differential privacy and secure aggregation: the maths both sides agree on.

Pure functions over numbers and record identities; no database, no web framework. The node applies
them to every result before it leaves (and keeps the epsilon ledger in ``node.privacy``); the
coordinator uses :mod:`~common.privacy.secure_sum` to add masked vectors.

- :mod:`~common.privacy.record_keys` — persistent secret record keys, derived from the node secret;
- :mod:`~common.privacy.cell_key` — cell keys and the p-table: the same records, the same noise;
- :mod:`~common.privacy.suppression` — minimum cell size, secondary suppression and the attacker's check;
- :mod:`~common.privacy.policy` — :class:`DisclosurePolicy`, configured by the node;
- :mod:`~common.privacy.release` — :class:`Discloser`: the policy applied to counts, tables, crosstabs,
  Kaplan-Meier tables and quantiles, with metadata;
- :mod:`~common.privacy.dp` — Laplace and Gaussian mechanisms with repeatable noise;
- :mod:`~common.privacy.secure_sum` — integer masking mod 2**k, and its threat model;
- :mod:`~common.privacy.secure_updates` — model updates clipped, quantised and weighted for secure sums;
- :mod:`~common.privacy.rdp` — the RDP accountant of DP-SGD and of central DP.
"""

from common.privacy.cell_key import PTable, cell_key
from common.privacy.policy import DisclosurePolicy, DpPolicy
from common.privacy.record_keys import RecordKeyring
from common.privacy.release import Discloser, ReleasedValue
from common.privacy.suppression import MarginMask, recomputable_cells, suppress_table

__all__ = [
    "Discloser",
    "DisclosurePolicy",
    "DpPolicy",
    "MarginMask",
    "PTable",
    "RecordKeyring",
    "ReleasedValue",
    "cell_key",
    "recomputable_cells",
    "suppress_table",
]
