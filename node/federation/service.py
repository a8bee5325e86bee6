"""Start the node's federation side: the warm app host and the channel to its coordinator.

Runs only on an enrolled node (``medfed node enrol``). The built-in apps are bound to this node's
data: ``count`` counts the Patients in the node's own store; ``fedavg_mlp`` trains on synthetic
tabular features derived from the job's seed and this node's id (the analytics and learning issues
bind real views and datasets).
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from numpy.typing import NDArray

from common.flower import ensure_task_identity, route_flower_logging
from node.config import NodeSettings
from node.coordinator_client import CoordinatorClient
from node.federation.apps import builtin_apps
from node.federation.apps.data import make_tabular
from node.federation.channel import ChannelRunner
from node.federation.host import ClientAppHost
from node.fhir.service import FhirService
from node.identity import NodeIdentity

__all__ = ["TABULAR_ROWS", "start_federation"]

log = logging.getLogger("medfed.node.federation")
TABULAR_ROWS = 2_000


def _version() -> str:
    try:
        return version("medfed")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def build_host(service: FhirService, flower_node_id: int) -> ClientAppHost:
    """The node's app host with the built-in apps bound to this node's data."""

    def count_patients() -> int:
        total = service.search(service.parse("Patient", [("_count", "0")])).total
        return int(total or 0)

    def load_features(seed: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return make_tabular(TABULAR_ROWS, seed=(seed * 1_000_003 + flower_node_id) % 2**32)

    return ClientAppHost(
        node_id=flower_node_id, apps=builtin_apps(count_patients=count_patients, load_features=load_features)
    )


def start_federation(settings: NodeSettings, service: FhirService) -> ChannelRunner | None:
    """Connect an enrolled node to its coordinator (background threads); None if not enrolled."""
    identity = NodeIdentity.load(settings.data_dir)
    if identity is None:
        log.info("not enrolled with a coordinator; the channel stays off")
        return None
    ensure_task_identity()
    route_flower_logging()
    host = build_host(service, identity.flower_node_id)
    host.warm_up()
    runner = ChannelRunner(
        CoordinatorClient(identity, proxy=settings.coordinator_proxy), host, service.engine, version=_version()
    )
    runner.start()
    log.info("channel to the coordinator started")
    return runner
