"""SCAFFOLD at one node, instruction by instruction: corrected steps, option II, and a round asked again.

The node of ``test_learning_jobs`` with 19 training rows answers Scaffold train instructions sent straight
to it; its answers are replayed by hand with torch (the same minibatch order, SGD steps on the gradient
plus ``c - c_i``).
"""

from __future__ import annotations

import uuid

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

from common.analytics.task import decode_refusal
from common.errors import ErrorCode
from common.flower import ensure_task_identity
from common.models import build_model
from common.models.scaffold import SCAFFOLD_CONTROL, SCAFFOLD_DELTA, SCAFFOLD_NODES, SCAFFOLD_ROUNDS
from coordinator.federation.jobs.learning import LearningSpec, learning_config
from node.federation.apps.learning import SCAFFOLD_KEY, epoch_seed
from tests.integration.test_learning_jobs import NODE_IDS, _send, _site, _spec, _table

STEPS, LR = 3, 0.05


def _instruction(
    spec: LearningSpec,
    server_round: int,
    model: torch.nn.Module,
    control: dict[str, torch.Tensor],
    applied: int | None = None,
) -> Message:
    """A Scaffold train instruction; ``applied``: the last round of this node the coordinator aggregated."""
    config = ConfigRecord({**learning_config(spec, 7), "server-round": server_round})
    config[SCAFFOLD_NODES] = [] if applied is None else [NODE_IDS[2]]
    config[SCAFFOLD_ROUNDS] = [] if applied is None else [applied]
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "config": config,
            SCAFFOLD_CONTROL: ArrayRecord({k: Array(v.numpy()) for k, v in control.items()}),
        }
    )
    return Message(content, NODE_IDS[2], MessageType.TRAIN)


def test_a_node_takes_corrected_steps_answers_its_control_change_and_rewinds_a_round_asked_again() -> None:
    """Round 1 (c_i = 0) and round 2 are SGD on g - c_i + c over the node's persistent minibatch order;
    each reply's delta c_i is -c + (x - y) / (K lr) and c_i accumulates it; round 2 asked again gives the
    same model and delta c_i and leaves c_i where one round 2 left it; and a round 3 whose config says
    the coordinator aggregated this node's round 1 last starts from c_i after round 1."""
    ensure_task_identity()
    torch.set_num_threads(1)
    site = _site(2, NODE_IDS[2])
    spec = _spec(
        local_steps=STEPS,
        lr=LR,
        standardize="none",
        categorical=[],
        strategy={"name": "scaffold", "flavour": "flamby"},
    )
    job_id = str(uuid.uuid4())
    frame = _table(2)
    rows = frame[frame["split"] == "train"]
    x = torch.tensor(rows[["x0", "x1", "x2"]].to_numpy(), dtype=torch.float32)
    y = torch.tensor(rows["y"].to_numpy(), dtype=torch.float32)
    first, second = (
        torch.randperm(19, generator=torch.Generator().manual_seed(epoch_seed(7, site.node_id, epoch)))
        for epoch in (0, 1)
    )
    batches = [first[0:4], first[4:8], first[8:12], first[12:16], first[16:19], second[0:4]]

    model = build_model("logistic_regression", in_features=3, seed=1)
    own = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    controls = [
        {"linear.weight": torch.tensor([[0.2, -0.1, 0.05]]), "linear.bias": torch.tensor([0.3])},
        {"linear.weight": torch.tensor([[-0.4, 0.0, 0.1]]), "linear.bias": torch.tensor([-0.2])},
    ]
    replies = []
    for server_round, control in enumerate(controls, start=1):
        applied = None if server_round == 1 else server_round - 1
        (reply,) = _send([site], job_id, [_instruction(spec, server_round, model, control, applied)])
        replies.append(reply)
        by_hand = build_model("logistic_regression", in_features=3, seed=0)
        by_hand.load_state_dict(model.state_dict())
        optimizer = torch.optim.SGD(by_hand.parameters(), lr=LR)
        for batch in batches[(server_round - 1) * STEPS : server_round * STEPS]:
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(by_hand(x[batch]).reshape(-1), y[batch])
            torch.autograd.backward(loss)
            with torch.no_grad():
                for name, parameter in by_hand.named_parameters():
                    assert parameter.grad is not None
                    parameter.grad.add_(control[name] - own[name])
            optimizer.step()
        got = reply.content.array_records["arrays"]
        delta = reply.content.array_records[SCAFFOLD_DELTA]
        for name, tensor in by_hand.state_dict().items():
            assert np.array_equal(got[name].numpy(), tensor.numpy())
            want = -control[name].double() + (model.state_dict()[name].double() - tensor.double()) / (STEPS * LR)
            np.testing.assert_allclose(delta[name].numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
            own[name] = own[name] + torch.from_numpy(delta[name].numpy())
        saved = site.host.context(job_id).state.array_records[SCAFFOLD_KEY]
        for name, value in own.items():
            np.testing.assert_allclose(saved[f"now/{name}"].numpy(), value.numpy(), rtol=1e-6, atol=1e-7)
        if server_round == 1:
            model, after_one = by_hand, dict(own)

    (again,) = _send([site], job_id, [_instruction(spec, 2, model, controls[1], 1)])
    for record in ("arrays", SCAFFOLD_DELTA):
        for name, array in again.content.array_records[record].items():
            assert np.array_equal(array.numpy(), replies[1].content.array_records[record][name].numpy())
    saved = site.host.context(job_id).state.array_records[SCAFFOLD_KEY]
    for name, value in own.items():
        np.testing.assert_allclose(saved[f"now/{name}"].numpy(), value.numpy(), rtol=1e-6, atol=1e-7)

    # Round 2 was abandoned after all (the coordinator aggregated round 1 last): round 3 starts from c_i of round 1.
    (third,) = _send([site], job_id, [_instruction(spec, 3, model, controls[0], 1)])
    delta = third.content.array_records[SCAFFOLD_DELTA]
    saved = site.host.context(job_id).state.array_records[SCAFFOLD_KEY]
    for name, value in after_one.items():
        np.testing.assert_allclose(saved[f"start/{name}"].numpy(), value.numpy(), rtol=1e-6, atol=1e-7)
        want = value.numpy() + delta[name].numpy()
        np.testing.assert_allclose(saved[f"now/{name}"].numpy(), want, rtol=1e-6, atol=1e-7)


def test_a_node_refuses_a_scaffold_round_for_a_task_that_is_not_plain_sgd() -> None:
    """A Scaffold instruction for an Adam task is refused before any work, with a location-only hint."""
    ensure_task_identity()
    site = _site(2, NODE_IDS[2])
    spec = _spec(standardize="none", categorical=[], optimizer="adam")
    model = build_model("logistic_regression", in_features=3, seed=1)
    control = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    (reply,) = _send([site], str(uuid.uuid4()), [_instruction(spec, 1, model, control)])
    assert reply.has_error()
    code, hints = decode_refusal(reply.error.reason or "")
    assert code is ErrorCode.INVALID_LEARNING_TASK
    assert hints == ("optimizer: scaffold needs sgd without momentum",)
