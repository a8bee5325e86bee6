"""The release step of the ``analysis`` app: the node's disclosure policy, applied before a partial leaves.

The node's administrator configures the policy (:class:`common.privacy.policy.DisclosurePolicy`) and
the epsilon budgets of its ledger in ``disclosure.yaml`` in the node's data directory (keys:
:mod:`node.federation.release.config`; no file: the defaults, disclosure control **on**, no epsilon
budget). :func:`policy_release` binds the policy to the node's disclosure secret (``disclosure.key``,
written by ``medfed node init``) and to its ledger (the node's store), and returns the app's release
step, :class:`node.federation.release.NodeRelease`:

* policy disabled: partials leave as computed, with metadata ``{"method": "none"}``; results then
  equal the pooled statistic (this is what the equality tests run) — unless the job asks for
  differential privacy, which a node always honours (a researcher may ask for stronger protection);
* policy enabled: every analysis is released under its rule (:mod:`node.federation.release`), and
  what has no rule, or lacks the secret or ledger its rule needs, is refused (fail closed).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from common.privacy.policy import DisclosurePolicy
from node.federation.release import DISCLOSURE_FILE, NodeRelease, apply_ledger_config, read_disclosure_file
from node.privacy.ledger import PrivacyLedger
from node.privacy.secret import DISCLOSURE_KEY_FILE, load_disclosure_secret

__all__ = ["DISCLOSURE_FILE", "load_disclosure_policy", "policy_release"]


def load_disclosure_policy(data_dir: Path) -> DisclosurePolicy:
    """The policy in ``data_dir/disclosure.yaml``; the defaults (control on) when there is no such file."""
    return read_disclosure_file(data_dir)[0]


def policy_release(
    policy: DisclosurePolicy, *, data_dir: Path | None = None, engine: Engine | None = None
) -> NodeRelease:
    """The release step for ``policy``, with the secret under ``data_dir`` and the ledger behind ``engine``.

    Without ``data_dir`` (or its ``disclosure.key``) cell-key noise and DP are refused; without
    ``engine`` DP is. The budgets of ``disclosure.yaml`` are written to the ledger here, at start.
    """
    secret = None
    if data_dir is not None and (Path(data_dir) / DISCLOSURE_KEY_FILE).exists():
        secret = load_disclosure_secret(data_dir)
    ledger = None if engine is None else PrivacyLedger(engine)
    if ledger is not None and data_dir is not None:
        apply_ledger_config(ledger, read_disclosure_file(data_dir)[1])
    return NodeRelease(policy, secret=secret, ledger=ledger)
