"""The ClientApps installed with every node; a job names one of them, never ships code.

:func:`builtin_apps` builds the registry a :class:`~node.federation.host.ClientAppHost` is given:
``count`` (a ``query`` answered from ``count_patients``) and ``fedavg_mlp`` (``train``/``evaluate`` of the
registry's MLP over ``load_features``). The analytics and learning issues add more.
"""

from __future__ import annotations

from collections.abc import Callable

from node.federation.apps.count import count_app
from node.federation.apps.fedavg_mlp import FeatureLoader, fedavg_mlp_app, warm_up
from node.federation.host import InstalledApp

__all__ = ["COUNT", "FEDAVG_MLP", "builtin_apps"]

COUNT = "count"
FEDAVG_MLP = "fedavg_mlp"


def builtin_apps(*, count_patients: Callable[[], int], load_features: FeatureLoader) -> dict[str, InstalledApp]:
    """The built-in apps by name, bound to this node's data sources."""
    return {
        COUNT: InstalledApp(count_app(count_patients)),
        FEDAVG_MLP: InstalledApp(fedavg_mlp_app(load_features), warm_up=warm_up),
    }
