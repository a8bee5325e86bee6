"""The node's disclosure policy: what every result must pass before it leaves the node.

The hospital configures it, not the researcher and not the coordinator: a job can ask for a statistic,
never for weaker protection. :class:`DisclosurePolicy` is frozen and validated on construction, and
:meth:`DisclosurePolicy.from_mapping` reads it from the node's configuration file with unknown keys
refused (a misspelt ``min_cel: 10`` must not silently leave the default in force).

Defaults: cells of 1..4 are withheld (``min_cell = 5``) with secondary suppression; counts carry cell-key
noise of at most 5 (see :mod:`common.privacy.cell_key` for why 5: a one-patient differencing pair then
tells an attacker the patient's value about 55% of the time against 50% by chance); Kaplan-Meier
times are binned to 30 units of the view's time column; quantiles are rounded to 1 unit;
differential privacy is off unless the node turns it on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from common.errors import ConfigError
from common.privacy.cell_key import PTable

__all__ = ["DEFAULT_MAX_NOISE", "DEFAULT_MIN_CELL", "DisclosurePolicy", "DpPolicy"]

DEFAULT_MIN_CELL = 5
DEFAULT_MAX_NOISE = 5

Mechanism = Literal["laplace", "gaussian"]


@dataclass(frozen=True, slots=True)
class DpPolicy:
    """Differential privacy for released statistics: the mechanism and the epsilon/delta of one query."""

    mechanism: Mechanism = "laplace"
    epsilon: float = 1.0
    delta: float = 0.0

    def __post_init__(self) -> None:
        if self.mechanism not in ("laplace", "gaussian"):
            raise ConfigError(detail="dp.mechanism must be laplace or gaussian")
        if not _finite_number(self.epsilon) or not 0 < self.epsilon <= 100:
            raise ConfigError(detail="dp.epsilon must be a number in (0, 100]")
        if not _finite_number(self.delta) or not 0 <= self.delta < 1:
            raise ConfigError(detail="dp.delta must be a number in [0, 1)")
        if self.mechanism == "gaussian" and self.delta == 0:
            raise ConfigError(detail="the gaussian mechanism needs dp.delta > 0")
        if self.mechanism == "laplace" and self.delta != 0:
            raise ConfigError(detail="the laplace mechanism is pure epsilon-DP; set dp.delta to 0")


@dataclass(frozen=True, slots=True)
class DisclosurePolicy:
    """Disclosure rules for every result a node releases (see the module docstring for the defaults)."""

    enabled: bool = True
    min_cell: int = DEFAULT_MIN_CELL
    cell_key: bool = True
    max_noise: int = DEFAULT_MAX_NOISE
    publish_margins: bool = True
    km_time_bin: float = 30.0
    quantile_precision: float = 1.0
    dp: DpPolicy | None = field(default=None)

    def __post_init__(self) -> None:
        if type(self.enabled) is not bool or type(self.cell_key) is not bool or type(self.publish_margins) is not bool:
            raise ConfigError(detail="disclosure.enabled, cell_key and publish_margins are true or false")
        if type(self.min_cell) is not int or not 1 <= self.min_cell <= 1000:
            raise ConfigError(detail="disclosure.min_cell must be an integer in 1..1000")
        if type(self.max_noise) is not int or not 1 <= self.max_noise <= 1000:
            raise ConfigError(detail="disclosure.max_noise must be an integer in 1..1000")
        if not _finite_number(self.km_time_bin) or self.km_time_bin <= 0:
            raise ConfigError(detail="disclosure.km_time_bin must be a positive number")
        if not _finite_number(self.quantile_precision) or self.quantile_precision <= 0:
            raise ConfigError(detail="disclosure.quantile_precision must be a positive number")
        if self.dp is not None and not isinstance(self.dp, DpPolicy):
            raise ConfigError(detail="disclosure.dp must be a DpPolicy")

    @classmethod
    def disabled(cls) -> DisclosurePolicy:
        """No disclosure control: results equal the statistic on the data (for trusted settings and tests)."""
        return cls(enabled=False, cell_key=False)

    @property
    def p_table(self) -> PTable | None:
        """The cell-key p-table in force, or None when counts are released without noise."""
        if not (self.enabled and self.cell_key):
            return None
        return PTable(max_noise=self.max_noise, min_cell=self.min_cell)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DisclosurePolicy:
        """Read a policy from configuration (``{"min_cell": 10, "dp": {"epsilon": 0.5}, ...}``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(detail="the disclosure policy must be a mapping")
        known = {"enabled", "min_cell", "cell_key", "max_noise", "publish_margins", "km_time_bin", "quantile_precision"}
        unknown = set(data) - known - {"dp"}
        if unknown:
            raise ConfigError(detail=f"unknown disclosure policy keys: {sorted(map(str, unknown))}")
        values: dict[str, Any] = {key: data[key] for key in known if key in data}
        dp = data.get("dp")
        if dp is not None:
            if not isinstance(dp, Mapping) or set(dp) - {"mechanism", "epsilon", "delta"}:
                raise ConfigError(detail="disclosure.dp takes mechanism, epsilon and delta")
            values["dp"] = DpPolicy(**dict(dp))
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """The policy as plain data (for results' metadata and the admin console)."""
        return {
            "enabled": self.enabled,
            "min_cell": self.min_cell,
            "cell_key": self.cell_key,
            "max_noise": self.max_noise,
            "publish_margins": self.publish_margins,
            "km_time_bin": self.km_time_bin,
            "quantile_precision": self.quantile_precision,
            "dp": None
            if self.dp is None
            else {"mechanism": self.dp.mechanism, "epsilon": self.dp.epsilon, "delta": self.dp.delta},
        }


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
