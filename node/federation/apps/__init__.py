"""The ClientApps installed with every node; a job names one of them, never ships code.

:func:`builtin_apps` builds the registry a :class:`~node.federation.host.ClientAppHost` is given:
``count`` (a ``query`` answered from ``count_patients``) and ``fedavg_mlp`` (``train``/``evaluate`` of the
registry's MLP over ``load_features``); ``analysis`` (a step of a :mod:`common.analytics` analysis over
``load_source``'s data, released through ``release``) when the node binds a source loader; ``learning``
(``train``/``evaluate`` of a learning task's model on ``load_source``'s data) when it binds a source loader.
"""

from __future__ import annotations

from collections.abc import Callable

from node.federation.apps.analysis import PersonSketch, Release, analysis_app
from node.federation.apps.count import count_app
from node.federation.apps.fedavg_mlp import FeatureLoader, fedavg_mlp_app, warm_up
from node.federation.apps.learning import EpsilonLedger, learning_app
from node.federation.host import InstalledApp
from node.federation.sources import SourceLoader

__all__ = ["ANALYSIS", "COUNT", "FEDAVG_MLP", "LEARNING", "builtin_apps"]

ANALYSIS = "analysis"
COUNT = "count"
FEDAVG_MLP = "fedavg_mlp"
LEARNING = "learning"


def builtin_apps(
    *,
    count_patients: Callable[[], int],
    load_features: FeatureLoader,
    load_source: SourceLoader | None = None,
    release: Release | None = None,
    persons: PersonSketch | None = None,
    ledger: EpsilonLedger | None = None,
) -> dict[str, InstalledApp]:
    """The built-in apps by name, bound to this node's data sources (``analysis`` needs both of its own;
    ``persons`` lets it answer ``distinct_count``; ``ledger`` is what DP-SGD learning charges)."""
    apps = {
        COUNT: InstalledApp(count_app(count_patients)),
        FEDAVG_MLP: InstalledApp(fedavg_mlp_app(load_features), warm_up=warm_up, background=True),
    }
    if load_source is not None and release is not None:
        apps[ANALYSIS] = InstalledApp(analysis_app(load_source, release, persons=persons))
    if load_source is not None:
        apps[LEARNING] = InstalledApp(learning_app(load_source, ledger=ledger), warm_up=warm_up, background=True)
    return apps
