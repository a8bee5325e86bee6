"""The ``learning`` ClientApp: ``train`` and ``evaluate`` of a learning task, put together from the modules.

``train`` reads the instruction, pins the job's data, and then takes one of four paths decided by the
task and the instruction: the secure-aggregation key step (nothing trained), DP-SGD (charged first),
Scaffold (corrected steps, delta c_i in the reply), or plain local work; secure aggregation then masks
the update instead of sending the model. Every refusal is a Flower error reply (:func:`refusal`).
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, MetricRecordValues, RecordDict
from flwr.clientapp import ClientApp

from common.errors import MedfedError
from common.flower import make_reply
from common.models.scaffold import SCAFFOLD_DELTA
from common.privacy.secure_updates import SECAGG_PUBLISH, SECAGG_RECORD
from node.config import training_threads
from node.federation.apps.learning.data import global_model, pinned_data
from node.federation.apps.learning.dp import EpsilonLedger, charge_round, train_private
from node.federation.apps.learning.evaluation import evaluate
from node.federation.apps.learning.instruction import ARRAYS_KEY, CONFIG_KEY, METRICS_KEY, read_instruction, refusal
from node.federation.apps.learning.scaffold import finish_scaffold_round, scaffold_request
from node.federation.apps.learning.secure import masked_update, publish_key, round_key, secure_request
from node.federation.apps.learning.training import MinibatchIterator, train
from node.federation.sources import SourceLoader

__all__ = ["learning_app"]


def learning_app(load_source: SourceLoader, *, ledger: EpsilonLedger | None = None) -> ClientApp:
    """A ClientApp with ``train`` and ``evaluate`` of a learning task on ``load_source``'s data.

    ``ledger`` is the node's epsilon ledger; without one, DP-SGD tasks are refused.
    """
    app = ClientApp()

    def answer_train(message: Message, context: Context) -> Message:
        instruction = read_instruction(message)
        task = instruction.task
        data = pinned_data(load_source, task, context)
        secure = secure_request(message) if task.secure_updates is not None else None
        if task.secure_updates is not None and secure is None:  # the key step: nothing trained, nothing sent
            return make_reply(message, RecordDict({METRICS_KEY: MetricRecord({"secagg-setup": 1})}))
        own_key = None if secure is None else round_key(context, secure)
        torch.set_num_threads(training_threads())  # the FHIR API in this process keeps the other cores
        n = int(data.x_train.shape[0])
        model = global_model(message, task)
        scaffold = scaffold_request(message, context, instruction, model)
        dp_round = charge_round(ledger, message, context, instruction, n) if task.dp_sgd is not None else None
        start = [value.detach().clone() for value in model.state_dict().values()]
        metrics: dict[str, MetricRecordValues] = {}
        content = RecordDict()
        if dp_round is not None:
            train_private(model, data, instruction, dp_round)
            metrics.update({"dp_epsilon": dp_round.epsilon, "dp_delta": dp_round.delta})
        else:
            order = MinibatchIterator(
                context,
                seed=instruction.seed,
                n_rows=n,
                batch_size=task.batch_size,
                server_round=instruction.server_round,
            )
            correction = () if scaffold is None else scaffold.correction()
            sent = [p.detach().clone() for p in model.parameters()] if scaffold is not None else []
            metrics["train_loss"] = train(model, data, order, instruction, correction=correction)
            order.save()
            if scaffold is not None:
                trained = [p.detach().clone() for p in model.parameters()]
                content[SCAFFOLD_DELTA] = finish_scaffold_round(context, scaffold, instruction, sent, trained)
        if secure is not None and own_key is not None:
            update = [value.detach() - first for value, first in zip(model.state_dict().values(), start, strict=True)]
            masked = masked_update(context, secure, own_key, instruction, update, n)
            return make_reply(message, RecordDict({SECAGG_RECORD: masked, METRICS_KEY: MetricRecord(metrics)}))
        metrics["num-examples"] = n
        content[ARRAYS_KEY] = ArrayRecord.from_torch_state_dict(model.state_dict())
        content[METRICS_KEY] = MetricRecord(metrics)
        return make_reply(message, content)

    @app.train()
    def train_handler(message: Message, context: Context) -> Message:
        try:
            return answer_train(message, context)
        except MedfedError as exc:
            return refusal(message, exc)

    @app.evaluate()
    def evaluate_handler(message: Message, context: Context) -> Message:
        try:
            instruction = read_instruction(message)
            data = pinned_data(load_source, instruction.task, context)
        except MedfedError as exc:
            return refusal(message, exc)
        metrics = evaluate(global_model(message, instruction.task), data, instruction.task)
        content = RecordDict({METRICS_KEY: MetricRecord(metrics)})
        config = message.content.config_records[CONFIG_KEY]
        if instruction.task.secure_updates is not None and config.get(SECAGG_PUBLISH) is True:
            content[SECAGG_RECORD] = publish_key(context)
        return make_reply(message, content)

    return app
