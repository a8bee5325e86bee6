"""ClientApp: the same local training and evaluation as medfed's ``fedavg_mlp`` app, on the same kind of rows.

Rows come from medfed's generator, seeded from the run's seed and this SuperNode's ``partition-id``
(stock Flower node ids are random); 2,000 rows, the last fifth held out; SGD, batch 32, 1 epoch.
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

from common.models import build_model
from node.federation.apps.data import make_tabular

app = ClientApp()


def _int(config: ConfigRecord, key: str) -> int:
    value = config[key]
    assert isinstance(value, int)
    return value


def _data(message: Message, context: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    seed = _int(message.content.config_records["config"], "seed")
    partition = int(context.node_config["partition-id"])
    x, y = make_tabular(2_000, seed=(seed * 1_000_003 + partition + 1) % 2**32)
    cut = x.shape[0] - round(x.shape[0] * 0.2)
    return torch.from_numpy(x[:cut]), torch.from_numpy(y[:cut]), torch.from_numpy(x[cut:]), torch.from_numpy(y[cut:])


def _model(message: Message) -> nn.Module:
    model = build_model("mlp", in_features=30, hidden=(64, 64), seed=0)
    model.load_state_dict(message.content.array_records["arrays"].to_torch_state_dict())
    return model


@app.train()
def train(message: Message, context: Context) -> Message:
    config = message.content.config_records["config"]
    x, y, _, _ = _data(message, context)
    model = _model(message)
    lr = config["lr"]
    assert isinstance(lr, float)
    batch_size = _int(config, "batch-size")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(_int(config, "server-round"))
    model.train()
    total = 0.0
    for _ in range(_int(config, "local-epochs")):
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(model(x[batch]).squeeze(1), y[batch])
            torch.autograd.backward(loss)
            optimizer.step()
            total += float(loss.item()) * len(batch)
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "metrics": MetricRecord({"train_loss": total / x.shape[0], "num-examples": int(x.shape[0])}),
        }
    )
    return Message(content, reply_to=message)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    _, _, x_test, y_test = _data(message, context)
    model = _model(message)
    model.eval()
    with torch.no_grad():
        logits = model(x_test).squeeze(1)
        loss = float(nn.functional.binary_cross_entropy_with_logits(logits, y_test).item())
        accuracy = float(((logits > 0).float() == y_test).float().mean().item())
    metrics = MetricRecord({"eval_loss": loss, "eval_acc": accuracy, "num-examples": int(x_test.shape[0])})
    return Message(RecordDict({"metrics": metrics}), reply_to=message)
