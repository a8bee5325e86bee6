"""ClientApp: medfed's own ``learning`` app, run by Flower's deployment engine instead of a medfed node.

Each SuperNode names a medfed node data directory in its node config (``data-dir``) holding the
registered dataset the task reads, so the local work is exactly a medfed node's: the same task parsing,
data preparation, minibatch iterator (kept in Flower's ``context.state``) and training loop. Flower starts
a fresh ``flwr-clientapp`` process per message, so the app is built per message.
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from node.federation.apps.learning import learning_app
from node.federation.sources import node_source_loader

app = ClientApp()


def _medfed_app(context: Context) -> ClientApp:
    return learning_app(node_source_loader(data_dir=Path(str(context.node_config["data-dir"])), engine=None))


@app.train()
def train(message: Message, context: Context) -> Message:
    """The node's local training of one round."""
    return _medfed_app(context)(message, context)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    """The node's evaluation on its local test split."""
    return _medfed_app(context)(message, context)
