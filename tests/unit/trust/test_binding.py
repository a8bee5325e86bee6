"""Message binding: a message the coordinator builds from the signed spec fits it; one built otherwise does not.

The instructions here are built with the coordinator's own builders (the analysis task, the learning and
FedAvg configs) from the spec the researcher signed, then changed the way a compromised coordinator could.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict

from common.analytics.task import RECORD, REQUEST_KEY, ROUND_KEY, TASK_KEY
from common.crypto import SigningKey
from common.flower import ensure_task_identity
from common.trust import issue_membership, read_signed_job, sign_job, verify_membership
from coordinator.federation.jobs.fedavg import train_config
from coordinator.federation.jobs.learning import LearningSpec, learning_config
from coordinator.federation.jobs.specs import AnalysisSpec, parse_spec
from node.federation.binding import message_problems
from node.trust import TrustedJob
from tests.integration.test_learning_privacy import TASK as LEARNING

ADMIN, ALICE = SigningKey.generate(), SigningKey.generate()
JOB = "job-1"
ANALYSIS: dict[str, Any] = {
    "kind": "analysis",
    "analysis": "count",
    "params": {},
    "source": {"dataset": "heart"},
    "study": "diabetes",
    "privacy": {"dp": {"mechanism": "laplace", "epsilon": 0.5}},
}


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    """Flower messages need the process's task identity (as every medfed process sets it)."""
    ensure_task_identity()


def _trusted(spec: dict[str, Any]) -> TrustedJob:
    now = int(time.time())
    certificate = issue_membership(
        ADMIN,
        researcher="alice",
        public_key=ALICE.public_key(),
        studies=["diabetes", str(spec.get("study") or "diabetes")],
        issued_at=now - 10,
        expires_at=now + 600,
        serial=1,
    )
    study = str(spec.get("study") or "diabetes")
    return TrustedJob(
        JOB,
        read_signed_job(sign_job(ALICE, spec, study=study)),
        verify_membership(certificate, ADMIN.public_key(), now=now),
    )


def _message(records: Mapping[str, ConfigRecord], message_type: str = MessageType.QUERY) -> Message:
    content: dict[str, ArrayRecord | MetricRecord | ConfigRecord] = dict(records)
    return Message(RecordDict(content), 7, message_type)


def _analysis_message(spec: AnalysisSpec, *, researcher: str = "alice", job: str = JOB, step: int = 1) -> Message:
    task = spec.task(researcher=researcher, job=job)
    return _message({RECORD: ConfigRecord({TASK_KEY: task.wire(), REQUEST_KEY: "null", ROUND_KEY: step})})


def test_the_coordinators_analysis_task_fits_and_a_changed_one_does_not() -> None:
    """The task the coordinator builds from the signed spec fits; other parameters, another researcher to
    charge, another job, or a step past ``max_rounds`` is outside the spec, named by location."""
    normal = parse_spec(ANALYSIS).model_dump(mode="json")
    trusted = _trusted(normal)
    signed = parse_spec(normal)
    assert isinstance(signed, AnalysisSpec)
    other = parse_spec({**ANALYSIS, "params": {"columns": ["age"]}})
    assert isinstance(other, AnalysisSpec)

    assert message_problems(trusted, _analysis_message(signed)) == ()
    assert message_problems(trusted, _analysis_message(other)) == ("analysis.task.params: outside the signed spec",)
    assert message_problems(trusted, _analysis_message(signed, researcher="mallory")) == (
        "analysis.task.privacy: outside the signed spec",
    )
    assert message_problems(trusted, _analysis_message(signed, job="job-2")) == (
        "analysis.task.privacy: outside the signed spec",
    )
    assert message_problems(trusted, _analysis_message(signed, step=201)) == ("message.round: outside the signed spec",)
    for plain in ({k: v for k, v in ANALYSIS.items() if k not in ("study", "privacy")}, {**ANALYSIS, "privacy": None}):
        spec = parse_spec(plain)
        assert isinstance(spec, AnalysisSpec)
        assert message_problems(_trusted(spec.model_dump(mode="json")), _analysis_message(spec)) == ()


def test_the_coordinators_learning_config_fits_and_other_settings_do_not() -> None:
    """The learning config of the signed spec, for its researcher, fits; a higher learning rate, another
    researcher, a train message past the signed rounds, or a message type the kind has not, does not."""
    spec = parse_spec({**LEARNING, "rounds": 2})
    assert isinstance(spec, LearningSpec)
    normal = spec.model_dump(mode="json")
    trusted = _trusted(normal)

    def train(changed: LearningSpec, researcher: str = "alice", server_round: int = 1, kind: str = "train") -> Message:
        config = {**learning_config(changed.for_submitter(researcher), seed=3), ROUND_KEY: server_round}
        return _message({"config": ConfigRecord(config)}, kind)

    faster = parse_spec({**LEARNING, "rounds": 2, "lr": float(normal["lr"]) * 10})
    assert isinstance(faster, LearningSpec)
    assert message_problems(trusted, train(spec)) == ()
    assert message_problems(trusted, train(faster)) == ("config.task: outside the signed spec",)
    assert message_problems(trusted, train(spec, researcher="mallory")) == (
        "config.researcher: outside the signed spec",
    )
    assert message_problems(trusted, train(spec, server_round=3)) == ("message.round: outside the signed spec",)
    assert message_problems(trusted, train(spec, kind=MessageType.QUERY)) == ("message.type: outside the signed spec",)


def test_the_fedavg_config_must_carry_the_signed_training_settings() -> None:
    """FedAvg's config with the signed widths, epochs, rate and batch fits; another learning rate does not."""
    normal = parse_spec({"kind": "fedavg_mlp", "rounds": 2}).model_dump(mode="json")
    trusted = _trusted(normal)

    def train(lr: float) -> Message:
        config = train_config(seed=1, hidden=normal["hidden"], local_epochs=1, lr=lr, batch_size=32)
        return _message({"config": ConfigRecord({**config, ROUND_KEY: 1})}, MessageType.TRAIN)

    assert message_problems(trusted, train(normal["lr"])) == ()
    assert message_problems(trusted, train(0.9)) == ("config.lr: outside the signed spec",)
