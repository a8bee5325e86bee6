"""Start the node's federation side: the warm app host and the channel to its coordinator.

Runs only on an enrolled node (``medfed node enrol``). The built-in apps are bound to this node's
data: ``count`` counts the Patients in the node's own store; ``fedavg_mlp`` trains on synthetic
tabular features derived from the job's seed and this node's id (the learning issue binds real views
and datasets); ``analysis`` reads the node's tabular datasets (under its data directory) and
materialised views (in its store), and releases through the node's disclosure policy
(``disclosure.yaml`` in the data directory; see :mod:`node.federation.disclosure`).

Every job passes the node's checks first: the channel asks :class:`~node.policy.admission.JobAdmissions`
(over the node's signed-job checks, :class:`~node.trust.JobTrust` with the network-admin key pinned at
enrolment, its :class:`~node.policy.gate.PolicyGate` and audit log) before a job's messages run.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from common.flower import ensure_task_identity, route_flower_logging
from common.privacy.policy import DisclosurePolicy
from node.audit import AuditLog
from node.config import NodeSettings
from node.coordinator_client import CoordinatorClient
from node.federation.apps import builtin_apps
from node.federation.apps.data import make_tabular
from node.federation.apps.distinct import distinct_sketcher
from node.federation.channel import ChannelRunner
from node.federation.disclosure import load_disclosure_policy, policy_release
from node.federation.host import ClientAppHost
from node.federation.sources import node_source_loader
from node.fhir.service import FhirService
from node.identity import NodeIdentity
from node.linkage.consent import research_excluded_patient_keys
from node.linkage.keyfile import key_provider
from node.policy.admission import JobAdmissions
from node.policy.gate import PolicyGate
from node.privacy.ledger import PrivacyLedger
from node.trust import JobTrust

__all__ = ["TABULAR_ROWS", "build_host", "count_research_patients", "start_federation"]

log = logging.getLogger("medfed.node.federation")
TABULAR_ROWS = 2_000


def _version() -> str:
    try:
        return version("medfed")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def count_research_patients(service: FhirService) -> int:
    """The node's Patients that federated jobs may count: all but those who opted out of research."""
    total = int(service.search(service.parse("Patient", [("_count", "0")])).total or 0)
    excluded = research_excluded_patient_keys(service.engine)
    if excluded:
        opted_out = service.search(service.parse("Patient", [("_id", ",".join(sorted(excluded))), ("_count", "0")]))
        total -= int(opted_out.total or 0)
    return total


def build_host(
    service: FhirService,
    flower_node_id: int,
    *,
    data_dir: Path | None = None,
    disclosure: DisclosurePolicy | None = None,
) -> ClientAppHost:
    """The node's app host with the built-in apps bound to this node's data.

    ``analysis`` reads datasets under ``data_dir`` (none without it) and views in the service's store,
    and releases under ``disclosure`` (the defaults, control on, when not given).
    """

    def count_patients() -> int:
        return count_research_patients(service)

    def load_features(seed: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return make_tabular(TABULAR_ROWS, seed=(seed * 1_000_003 + flower_node_id) % 2**32)

    policy = disclosure or DisclosurePolicy()
    apps = builtin_apps(
        count_patients=count_patients,
        load_features=load_features,
        load_source=node_source_loader(data_dir=data_dir, engine=service.engine),
        release=policy_release(policy, data_dir=data_dir, engine=service.engine),
        # distinct_count: the cohort's persons under the network linkage key (refused while there is none)
        persons=None if data_dir is None else distinct_sketcher(service.engine, key_provider(data_dir), policy),
        ledger=PrivacyLedger(service.engine),
    )
    return ClientAppHost(node_id=flower_node_id, apps=apps)


def start_federation(
    settings: NodeSettings, service: FhirService, *, policy: PolicyGate, audit: AuditLog
) -> ChannelRunner | None:
    """Connect an enrolled node to its coordinator (background threads); None if not enrolled.

    ``policy`` decides every job before it runs; ``audit`` records each job's arrival.
    """
    identity = NodeIdentity.load(settings.data_dir)
    if identity is None:
        log.info("not enrolled with a coordinator; the channel stays off")
        return None
    if identity.network_admin_public_key is None:
        log.warning("no network-admin key pinned (enrolled before it existed): every job is refused; enrol again")
    ensure_task_identity()
    route_flower_logging()
    host = build_host(
        service,
        identity.flower_node_id,
        data_dir=settings.data_dir,
        disclosure=load_disclosure_policy(settings.data_dir),
    )
    host.warm_up()
    runner = ChannelRunner(
        CoordinatorClient(identity, proxy=settings.coordinator_proxy),
        host,
        service.engine,
        version=_version(),
        admissions=JobAdmissions(
            policy,
            audit,
            JobTrust(
                service.engine,
                identity.network_admin_public_key,
                max_age_s=settings.signed_job_max_age_s,
                max_skew_s=settings.signed_job_max_skew_s,
            ),
        ),
    )
    runner.start()
    log.info("channel to the coordinator started")
    return runner
