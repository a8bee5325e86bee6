"""DP-SGD learning jobs in one process: the round driver, three nodes with their own epsilon ledgers.

Each node answers through :class:`InMemoryTransport` from its own generated table and charges its own
ledger (a migrated SQLite file per node). The researcher is attached as the runner does
(:meth:`LearningSpec.for_submitter`).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord, Message, MessageType, RecordDict

from common.analytics.task import decode_refusal
from common.errors import ErrorCode
from common.flower import ensure_task_identity, flower_node_id, message_from_bytes
from common.models.task import LEARNING_ERROR_CODE
from common.privacy.rdp import dp_sgd_epsilon
from coordinator.federation.driver import DriverState, FedAvgDriver, NodeOutcome, QuorumError, initial_state
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.learning import LearningSpec, privacy_report
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.memory import InMemoryTransport
from node.federation.apps.learning import learning_app
from node.federation.host import ClientAppHost, InstalledApp
from node.federation.sources import LoadedSource, SourceLoader
from node.privacy.ledger import Budget, PrivacyLedger
from node.store.db import make_engine
from node.store.migrate import upgrade

NODE_IDS = [flower_node_id(f"dp-site-{i}") for i in range(3)]
ROWS = (40, 64, 32)
RESEARCHER = "token:7"
STUDY = "heart-2026"
DP = {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-6, "epsilon_budget": 50.0}
TASK: dict[str, Any] = {
    "kind": "learning",
    "model": "logistic_regression",
    "source": {"dataset": "table"},
    "features": ["x0", "x1"],
    "target": "y",
    "split": {"column": "split"},
    "standardize": "node_train",
    "local_steps": 4,
    "batch_size": 8,
    "lr": 0.1,
    "quorum": 3,
    "rounds": 2,
    "study": STUDY,
    "privacy": {"dp_sgd": DP},
}


def _table(index: int) -> pd.DataFrame:
    rng = np.random.default_rng(300 + index)
    n = ROWS[index]
    x = rng.normal(size=(n, 2))
    return pd.DataFrame(
        {
            "x0": x[:, 0],
            "x1": x[:, 1],
            "y": (x[:, 0] - x[:, 1] + rng.normal(size=n) > 0).astype(int),
            "split": np.where(np.arange(n) % 4 == 3, "test", "train"),
        }
    )


def _train_rows(index: int) -> int:
    return int((_table(index)["split"] == "train").sum())


def _job_epsilon(index: int, rounds: int) -> float:
    q = min(1.0, TASK["batch_size"] / _train_rows(index))
    return dp_sgd_epsilon(q=q, sigma=DP["noise_multiplier"], steps=rounds * TASK["local_steps"], delta=DP["delta"])


def _loader(frame: pd.DataFrame, snapshot: str) -> SourceLoader:
    def load(source: Any) -> LoadedSource:
        return LoadedSource(frame, snapshot)

    return load


@dataclass
class Site:
    """One node: its host, its ledger, and every reply it sent (decoded)."""

    node_id: int
    host: ClientAppHost
    ledger: PrivacyLedger
    replies: list[Message] = field(default_factory=list)
    received: list[Message] = field(default_factory=list)

    def call(self, payload: bytes, *, job_id: str) -> bytes:
        """The node's endpoint on the in-memory transport; keeps the instruction and the reply."""
        self.received.append(message_from_bytes(payload))
        reply = self.host.handle(
            payload, job_id=job_id, app="learning", allowed_message_types=frozenset({"train", "evaluate"})
        )
        self.replies.append(message_from_bytes(reply))
        return reply


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated node database file, copied for every node."""
    path = tmp_path_factory.mktemp("ledger") / "node.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def sites(migrated_db: Path, tmp_path: Path) -> Iterator[list[Site]]:
    """Three nodes, each with a ledger: a node cap of 100 and the researcher's study budget of 1.5 x the
    epsilon of a two-round job at that node (so one job fits, and a second one does not)."""
    ensure_task_identity()
    torch.set_num_threads(1)
    made, engines = [], []
    for index, node_id in enumerate(NODE_IDS):
        path = tmp_path / f"node{index}.db"
        shutil.copy(migrated_db, path)
        engine = make_engine(f"sqlite:///{path}")
        engines.append(engine)
        ledger = PrivacyLedger(engine)
        ledger.set_node_cap(Budget(100.0, 1e-3))
        ledger.set_budget(RESEARCHER, STUDY, Budget(1.5 * _job_epsilon(index, 2), 1e-5))
        frame = _table(index)
        app = learning_app(_loader(frame, f"snap-{index}"), ledger=ledger)
        made.append(Site(node_id, ClientAppHost(node_id=node_id, apps={"learning": InstalledApp(app)}), ledger))
    yield made
    for engine in engines:
        engine.dispose()


class _Observer:
    def __init__(self) -> None:
        self.outcomes: list[list[NodeOutcome]] = []

    def round_started(self, server_round: int, *, attempt: int, deadline: float) -> None:
        """Nothing to do."""

    def round_finished(
        self, server_round: int, *, completed: bool, attempts: int, outcomes: Any, started: float
    ) -> None:
        """Keep the outcomes."""
        self.outcomes.append(list(outcomes))

    def state_saved(self, state: DriverState) -> None:
        """Nothing to do."""

    def should_stop(self) -> bool:
        """Never."""
        return False


def _spec(**changes: Any) -> LearningSpec:
    spec = parse_spec({**TASK, **changes})
    assert isinstance(spec, LearningSpec)
    return spec.for_submitter(RESEARCHER)


def _run(sites: list[Site], spec: LearningSpec, job_id: str | None = None) -> tuple[DriverState, _Observer]:
    observer = _Observer()
    with InMemoryTransport({site.node_id: site.call for site in sites}) as transport:
        grid = MedfedGrid(transport, job_id=job_id or str(uuid.uuid4()))
        final = FedAvgDriver(grid, spec, seed=11, observer=observer).run(initial_state(spec, 11))
    return final, observer


def _spent(site: Site) -> float:
    usage = site.ledger.usage(RESEARCHER, STUDY)
    assert usage is not None
    return usage.spent.epsilon


def _train_replies(site: Site) -> list[Message]:
    return [r for r in site.replies if r.metadata.message_type == MessageType.TRAIN]


def test_each_node_charges_its_ledger_the_accountants_epsilon_and_a_second_job_that_would_overspend_is_refused(
    sites: list[Site],
) -> None:
    """After a two-round DP-SGD job every node's ledger shows that node's RDP epsilon of 2 x local_steps
    Poisson steps (one entry per round, delta charged once); its replies report the same epsilon and no
    training loss. A second job, which would pass the study budget, is refused by every node with
    ``privacy_budget_exceeded`` before it spends anything, and the job fails its quorum."""
    final, _ = _run(sites, _spec())
    assert final.round == 2
    for index, site in enumerate(sites):
        expected = _job_epsilon(index, 2)
        assert _spent(site) == pytest.approx(expected, abs=1e-8)
        entries = site.ledger.entries(researcher=RESEARCHER, study=STUDY)
        assert len(entries) == 2
        assert [e.delta for e in entries] == [DP["delta"], 0.0]
        assert entries[0].epsilon == pytest.approx(_job_epsilon(index, 1), abs=1e-8)
        last = _train_replies(site)[-1].content.metric_records["metrics"]
        assert last["dp_epsilon"] == pytest.approx(expected)
        assert "train_loss" not in last
    spent = [_spent(site) for site in sites]

    with pytest.raises(QuorumError):
        _run(sites, _spec())
    for site, before in zip(sites, spent, strict=True):
        refusal = _train_replies(site)[-1]
        assert refusal.has_error()
        assert refusal.error.code == LEARNING_ERROR_CODE
        assert decode_refusal(refusal.error.reason or "")[0] is ErrorCode.PRIVACY_BUDGET_EXCEEDED
        assert _spent(site) == before
        assert len(site.ledger.entries(researcher=RESEARCHER, study=STUDY)) == 2


def test_a_round_asked_again_with_the_same_model_costs_nothing_and_gets_the_same_answer(sites: list[Site]) -> None:
    """A train instruction sent again (a retried attempt: a new message id, the same round and model) is
    answered identically and not charged; the same round with a different global model is charged anew."""
    job_id = str(uuid.uuid4())
    _run(sites, _spec(rounds=1), job_id=job_id)
    site = sites[0]
    (first,) = _train_replies(site)
    spent = _spent(site)
    instruction = next(m for m in site.received if m.metadata.message_type == MessageType.TRAIN)
    again = _deliver(site, job_id, instruction)
    assert not again.has_error()
    for name, array in first.content.array_records["arrays"].items():
        np.testing.assert_array_equal(again.content.array_records["arrays"][name].numpy(), array.numpy())
    assert _spent(site) == spent

    changed = _deliver(site, job_id, instruction, nudge=1e-3)
    assert not changed.has_error()
    assert _spent(site) > spent
    assert len(site.ledger.entries(researcher=RESEARCHER, study=STUDY)) == 2


def _deliver(site: Site, job_id: str, instruction: Message, *, nudge: float = 0.0) -> Message:
    """Send ``instruction`` again under a new message id (its model moved by ``nudge``); the reply."""
    config = instruction.content.config_records["config"]
    arrays = ArrayRecord(
        {
            name: Array(array.numpy() + np.float32(nudge))
            for name, array in instruction.content.array_records["arrays"].items()
        }
    )
    message = Message(RecordDict({"arrays": arrays, "config": config}), site.node_id, MessageType.TRAIN)
    with InMemoryTransport({site.node_id: site.call}) as transport:
        (reply,) = MedfedGrid(transport, job_id=job_id).send_and_receive([message], timeout=30)
    return reply


def test_a_round_past_the_jobs_own_epsilon_budget_is_refused_before_the_ledger_is_touched(sites: list[Site]) -> None:
    """``epsilon_budget`` below the first round's epsilon: every node refuses with privacy_budget_exceeded,
    naming the budget, and charges nothing."""
    small = {**DP, "epsilon_budget": 0.5 * min(_job_epsilon(i, 1) for i in range(3))}
    with pytest.raises(QuorumError):
        _run(sites, _spec(rounds=1, privacy={"dp_sgd": small}))
    for site in sites:
        refusal = _train_replies(site)[-1]
        assert refusal.has_error()
        code, hints = decode_refusal(refusal.error.reason or "")
        assert code is ErrorCode.PRIVACY_BUDGET_EXCEEDED
        assert hints == ("privacy.dp_sgd.epsilon_budget",)
        assert site.ledger.entries() == []


def test_without_a_researcher_a_node_refuses_dp_sgd(sites: list[Site]) -> None:
    """A DP-SGD instruction that names no researcher (no account to charge) is refused, fail closed."""
    spec = parse_spec({**TASK, "rounds": 1})
    assert isinstance(spec, LearningSpec)
    with pytest.raises(QuorumError):
        _run(sites, spec)
    for site in sites:
        assert decode_refusal(_train_replies(site)[-1].error.reason or "")[0] is ErrorCode.PRIVACY_BUDGET_EXCEEDED
        assert site.ledger.entries() == []


def test_dp_sgd_is_refused_for_a_cox_model_and_without_a_study() -> None:
    """Per-row clipping does not bound a row's influence on the Cox loss; a DP-SGD job names its study."""
    cox = {"model": "cox_linear", "target": None, "event": "y", "time": "x1", "features": ["x0"]}
    for bad in ({**TASK, **cox}, {**TASK, "study": None}):
        with pytest.raises(Exception, match="invalid job spec"):
            parse_spec(bad)


def test_the_job_report_labels_dp_sgd_as_record_level() -> None:
    """The job's privacy report names DP-SGD record-level with its settings, and no client-level figure."""
    report = privacy_report(_spec(), rounds=2)
    assert report["record_level"]["noise_multiplier"] == DP["noise_multiplier"]
    assert "client_level" not in report


def test_central_dp_reports_a_client_level_epsilon_per_round_and_charges_no_node_ledger(sites: list[Site]) -> None:
    """Flower's server-side fixed clipping runs the job; each round's metrics carry the client-level
    epsilon of the rounds so far (RDP of the Gaussian mechanism, no amplification), the job report labels
    it client-level, and no node's ledger holds an entry."""
    central = {"noise_multiplier": 2.0, "clipping_norm": 0.5, "num_sampled_clients": 3, "delta": 1e-5}
    spec = _spec(privacy=None, study=None, central_dp=central)
    final, _ = _run(sites, spec)
    for server_round in (1, 2):
        metrics = final.history["train"][str(server_round)]
        want = dp_sgd_epsilon(q=1.0, sigma=2.0, steps=server_round, delta=1e-5)
        assert metrics["central_dp_epsilon"] == pytest.approx(want)
        assert metrics["central_dp_delta"] == 1e-5
    report = privacy_report(spec, rounds=2)
    assert report["client_level"]["epsilon"] == pytest.approx(dp_sgd_epsilon(q=1.0, sigma=2.0, steps=2, delta=1e-5))
    assert "record_level" not in report
    for site in sites:
        assert site.ledger.entries() == []


def test_central_dp_is_refused_with_an_adaptive_server_step() -> None:
    """The client-level accounting is for a mean of clipped updates: FedAdam's step is refused."""
    central = {"noise_multiplier": 1.0, "clipping_norm": 1.0, "num_sampled_clients": 3}
    with pytest.raises(Exception, match="invalid job spec"):
        parse_spec({**TASK, "central_dp": central, "strategy": {"name": "fedadam"}})
