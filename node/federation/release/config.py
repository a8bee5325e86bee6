"""The node's ``disclosure.yaml``: its disclosure policy and the epsilon budgets its ledger grants.

The file lives in the node's data directory; without it the defaults apply (disclosure control **on**,
no differential-privacy budget at all). Keys: every key of
:meth:`common.privacy.policy.DisclosurePolicy.from_mapping` (``enabled``, ``min_cell``, ``cell_key``,
``max_noise``, ``publish_margins``, ``km_time_bin``, ``quantile_precision``, ``dp``), plus ``ledger``::

    min_cell: 5
    max_noise: 5
    ledger:
      node_cap: {epsilon: 10.0, delta: 1.0e-6}       # over all researchers and studies together
      accounts:                                        # one budget per researcher x study
        - {researcher: alice, study: heart-2025, epsilon: 2.0, delta: 0}

``researcher`` is the researcher's name in the membership certificate the network-admin key signed
(``docs/trust.md``): the node checks that a job's messages charge that name. The budgets are written to the node's
ledger when the node starts (:func:`apply_ledger_config`): a budget can be raised or lowered, what was
spent stays spent, and an account or cap the file does not mention is left as it is (the admin's other
tools may have set it). Unknown keys are refused, here as in the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError
from common.privacy.policy import DisclosurePolicy
from node.privacy.ledger import Budget, PrivacyLedger

__all__ = ["DISCLOSURE_FILE", "LedgerAccount", "LedgerConfig", "apply_ledger_config", "read_disclosure_file"]

DISCLOSURE_FILE = "disclosure.yaml"


@dataclass(frozen=True, slots=True)
class LedgerAccount:
    """One researcher's budget on one study."""

    researcher: str
    study: str
    budget: Budget


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """The budgets ``disclosure.yaml`` grants (None / empty: the file sets none)."""

    node_cap: Budget | None = None
    accounts: tuple[LedgerAccount, ...] = ()


def _budget(data: Any, location: str) -> Budget:
    if not isinstance(data, Mapping) or set(data) - {"epsilon", "delta"} or "epsilon" not in data:
        raise ConfigError(detail=f"{DISCLOSURE_FILE}: {location} takes epsilon and delta")
    epsilon, delta = data["epsilon"], data.get("delta", 0)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (epsilon, delta)):
        raise ConfigError(detail=f"{DISCLOSURE_FILE}: {location} epsilon and delta are numbers")
    return Budget(float(epsilon), float(delta))


def _ledger(data: Any) -> LedgerConfig:
    if not isinstance(data, Mapping) or set(data) - {"node_cap", "accounts"}:
        raise ConfigError(detail=f"{DISCLOSURE_FILE}: ledger takes node_cap and accounts")
    cap = None if data.get("node_cap") is None else _budget(data["node_cap"], "ledger.node_cap")
    raw_accounts = data.get("accounts") or []
    if not isinstance(raw_accounts, list):
        raise ConfigError(detail=f"{DISCLOSURE_FILE}: ledger.accounts is a list")
    accounts = []
    for index, item in enumerate(raw_accounts):
        location = f"ledger.accounts[{index}]"
        if not isinstance(item, Mapping) or set(item) - {"researcher", "study", "epsilon", "delta"}:
            raise ConfigError(detail=f"{DISCLOSURE_FILE}: {location} takes researcher, study, epsilon and delta")
        researcher, study = item.get("researcher"), item.get("study")
        if not isinstance(researcher, str) or not isinstance(study, str):
            raise ConfigError(detail=f"{DISCLOSURE_FILE}: {location} names a researcher and a study")
        budget = _budget({k: v for k, v in item.items() if k in ("epsilon", "delta")}, location)
        accounts.append(LedgerAccount(researcher, study, budget))
    return LedgerConfig(cap, tuple(accounts))


def read_disclosure_file(data_dir: Path) -> tuple[DisclosurePolicy, LedgerConfig]:
    """The policy and ledger budgets of ``data_dir/disclosure.yaml`` (the defaults without the file)."""
    path = Path(data_dir) / DISCLOSURE_FILE
    if not path.is_file():
        return DisclosurePolicy(), LedgerConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise ConfigError(detail=f"{DISCLOSURE_FILE} is not readable YAML") from None
    data = data or {}
    if not isinstance(data, Mapping):
        raise ConfigError(detail=f"{DISCLOSURE_FILE} must be a mapping")
    policy = DisclosurePolicy.from_mapping({key: value for key, value in data.items() if key != "ledger"})
    ledger = LedgerConfig() if data.get("ledger") is None else _ledger(data["ledger"])
    return policy, ledger


def apply_ledger_config(ledger: PrivacyLedger, config: LedgerConfig) -> None:
    """Write the file's budgets to the node's ledger (idempotent; spending is kept)."""
    if config.node_cap is not None:
        ledger.set_node_cap(config.node_cap)
    for account in config.accounts:
        ledger.set_budget(account.researcher, account.study, account.budget)
