"""A learning job through the REST API and the CLI: two enrolled nodes train on their registered datasets,
the rounds carry each node's metrics, and the final model is exported as a torch state dict."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from common.flower import ensure_task_identity
from common.models import build_model
from common.models.checkpoints import load_state_dict, state_dict_from_bytes
from coordinator.federation.runner import JobRunner
from coordinator.store import checkpoints, jobs
from medfed.cli import app as cli
from medfed.sdk import Federation, FederationError
from node.config import NodeSettings
from node.datasets.registry import register_dataset
from node.datasets.schema import load_schema
from node.federation.service import build_host
from node.identity import enrol
from node.runtime import init_node, open_service
from tests.integration.test_channel import Node
from tests.integration.test_enrolment import Coordinator, running_coordinator
from tests.researchers import add_researcher

JOB_WAIT_S = 60
SCHEMA = {
    "description": "generated rows for a learning job",
    "format": "csv",
    "csv": {"header": True, "delimiter": ","},
    "columns": [
        {"name": "x0", "type": "decimal"},
        {"name": "x1", "type": "decimal"},
        {"name": "grade", "type": "integer", "levels": [1, 2, 3]},
        {"name": "outcome", "type": "integer", "levels": [0, 1]},
        {"name": "split", "type": "string", "levels": ["train", "test"]},
    ],
}
SPEC: dict[str, Any] = {
    "kind": "learning",
    "model": "logistic_regression",
    "source": {"dataset": "cohort"},
    "features": ["x0", "x1"],
    "categorical": [{"column": "grade", "levels": [1, 2, 3]}],
    "target": "outcome",
    "split": {"column": "split"},
    "standardize": "node_train",
    "local_steps": 10,
    "batch_size": 8,
    "lr": 0.1,
    "rounds": 2,
    "quorum": 2,
    "round_timeout_s": 30,
    "strategy": {"name": "fedadam", "flavour": "flamby", "server_lr": 0.05},
}


def _rows(seed: int, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return pd.DataFrame(
        {
            "x0": np.round(x[:, 0], 4),
            "x1": np.round(x[:, 1], 4),
            "grade": rng.integers(1, 4, size=n),
            "outcome": (x[:, 0] - x[:, 1] + rng.normal(size=n) > 0).astype(int),
            "split": np.where(np.arange(n) % 3 == 0, "test", "train"),
        }
    )


@dataclass
class Network:
    """The coordinator (its app's runner runs submitted jobs), two nodes, a researcher client, CLI settings."""

    coordinator: Coordinator
    researcher: Federation
    cli_env: dict[str, str]

    def finished(self, job_id: str) -> dict[str, Any]:
        """The job once its worker has ended (joined, not polled)."""
        runner: JobRunner = self.coordinator.app.state.runner
        assert runner.join(job_id, JOB_WAIT_S), "the job did not end in time"
        return self.researcher.job(job_id)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A TLS coordinator and two connected nodes, each with a registered ``cohort`` dataset."""
    ensure_task_identity()
    torch.set_num_threads(1)
    data = tmp_path_factory.mktemp("learning-coordinator")
    schema_file = data / "cohort.schema.yaml"
    schema_file.write_text(yaml.safe_dump(SCHEMA), encoding="utf-8")
    with running_coordinator(data, f"sqlite:///{data / 'coordinator.db'}") as coordinator:
        ca_file = data / "ca.pem"
        ca_file.write_bytes(coordinator.identity.ca_pem)
        nodes: list[Node] = []
        who = add_researcher(coordinator.engine, data, data / "keys")
        researcher = who.federation(coordinator.url, ca_file)
        try:
            for index in range(2):
                node_dir = tmp_path_factory.mktemp(f"learning-node-{index}")
                settings = NodeSettings(data_dir=node_dir)
                init_node(settings)
                csv = node_dir / "cohort.csv"
                _rows(index).to_csv(csv, index=False)
                register_dataset(node_dir, "cohort", csv, load_schema(schema_file))
                service = open_service(settings)
                identity = enrol(node_dir, coordinator.code(f"Learning {index} {uuid.uuid4().hex[:6]}"), version="test")
                node = Node(identity, service, build_host(service, identity.flower_node_id, data_dir=node_dir))
                node.connect()
                nodes.append(node)
            env = {"MEDFED_COORDINATOR_URL": coordinator.url, "MEDFED_CA_FILE": str(ca_file), **who.env()}
            yield Network(coordinator, researcher, env)
        finally:
            researcher.close()
            for node in nodes:
                node.disconnect()
                node.service.engine.dispose()


def test_a_learning_job_records_each_nodes_metrics_per_round_and_exports_its_final_model(
    network: Network, tmp_path: Path
) -> None:
    """Each round row holds every node's training loss and test accuracy with their row counts; the job's
    result holds the aggregated history; ``medfed job results --model`` writes the final model as a state
    dict that loads with ``weights_only=True`` and equals the model the coordinator saved."""
    job = network.researcher.submit(SPEC, seed=11)
    done = network.finished(job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert [r["round"] for r in done["rounds"]] == [1, 2]
    for record in done["rounds"]:
        assert len(record["per_node"]) == 2
        for entry in record["per_node"].values():
            assert entry["train_metrics"]["num-examples"] == 40
            assert entry["train_metrics"]["train_loss"] > 0
            assert entry["evaluate_metrics"]["num-examples"] == 20
            assert 0 <= entry["evaluate_metrics"]["eval_acc"] <= 1
    result = network.researcher.results(job["id"])["result"]
    assert set(result["history"]["evaluate"]) == {"1", "2"}

    runner = CliRunner()
    model_file = tmp_path / "model.pt"
    exported = runner.invoke(cli, ["job", "results", job["id"], "--model", str(model_file)], env=network.cli_env)
    assert exported.exit_code == 0, exported.output
    assert "model of round 2 written" in exported.stderr
    state = load_state_dict(model_file)
    saved = jobs.load_job_state(network.coordinator.engine, job_id=job["id"])
    assert saved is not None
    for name, tensor in state_dict_from_bytes(saved.arrays).items():
        assert torch.equal(state[name], tensor)
    model = build_model("logistic_regression", in_features=4, seed=0)
    model.load_state_dict(state)

    watched = runner.invoke(cli, ["job", "watch", job["id"]], env=network.cli_env)
    assert watched.exit_code == 0, watched.output
    assert "loss" in watched.stderr


def test_a_job_without_a_saved_model_has_none_to_export(network: Network) -> None:
    """A job that failed before any round completed has no model: 404 ``not_found``."""
    job = network.researcher.submit({**SPEC, "features": ["x0", "missing_column"]}, seed=1)
    done = network.finished(job["id"])
    assert done["status"] == "failed"
    assert "quorum not met" in done["error"]
    with pytest.raises(FederationError) as refused:
        network.researcher.model_bytes(job["id"])
    assert refused.value.status == 404


def test_every_rounds_model_is_kept_across_a_restart_and_exported_by_round(network: Network, tmp_path: Path) -> None:
    """A 3-round job whose coordinator restarts after round 1 keeps every round's model: ``--round 1`` exports
    exactly the model the driver saved after round 1 (before the restart), round 3 is the final model and
    differs from it, and a round the job never ran has no model (404)."""
    app = network.coordinator.app
    engine = network.coordinator.engine
    original: JobRunner = app.state.runner
    after_round_one: dict[str, bytes] = {}

    def restart_after_round_one(job_id: str, server_round: int) -> None:
        if server_round == 1:
            saved = jobs.load_job_state(engine, job_id=job_id)  # the state the driver resumes from
            assert saved is not None
            after_round_one[job_id] = saved.arrays
            first.stop()

    first = JobRunner(app.state.engine, app.state.notifier, offline_after_s=30, after_round=restart_after_round_one)
    app.state.runner = first
    try:
        job_id = network.researcher.submit({**SPEC, "rounds": 3}, seed=5)["id"]
        assert first.join(job_id, JOB_WAIT_S), "the first runner did not stop"
        assert jobs.get_job(engine, job_id=job_id).status is jobs.JobStatus.RUNNING
        assert checkpoints.list_checkpoint_rounds(engine, job_id=job_id) == [1]
        second = JobRunner(app.state.engine, app.state.notifier, offline_after_s=30)
        app.state.runner = second
        assert job_id in second.start()
        assert second.join(job_id, JOB_WAIT_S), "the resumed job did not end in time"
    finally:
        app.state.runner = original
    assert network.researcher.job(job_id)["status"] == "succeeded"
    assert checkpoints.list_checkpoint_rounds(engine, job_id=job_id) == [1, 2, 3]

    first_file, final_file = tmp_path / "round1.pt", tmp_path / "final.pt"
    exported = CliRunner().invoke(
        cli, ["job", "results", job_id, "--model", str(first_file), "--round", "1"], env=network.cli_env
    )
    assert exported.exit_code == 0, exported.output
    assert "model of round 1 written" in exported.stderr
    assert network.researcher.save_model(job_id, final_file, round=3) == (3, True)
    round_one, final = load_state_dict(first_file), load_state_dict(final_file)
    for name, tensor in state_dict_from_bytes(after_round_one[job_id]).items():
        assert torch.equal(round_one[name], tensor)
    assert any(not torch.equal(round_one[name], final[name]) for name in final)
    saved = jobs.load_job_state(engine, job_id=job_id)
    assert saved is not None
    for name, tensor in state_dict_from_bytes(saved.arrays).items():
        assert torch.equal(final[name], tensor)
    assert network.researcher.model_bytes(job_id, round=2)[1:] == (2, False)
    with pytest.raises(FederationError) as missing:
        network.researcher.model_bytes(job_id, round=4)
    assert missing.value.status == 404
