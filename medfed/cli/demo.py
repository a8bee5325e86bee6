"""``medfed demo``: a whole network on this machine (see medfed/demo.py for what it runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from common.errors import MedfedError
from medfed.cli._common import fail

# `medfed demo` is a command of `medfed` itself: this app is added to it without a name, which merges it.
demo_app = typer.Typer()


@demo_app.command("demo")
def demo(
    root: Annotated[Path, typer.Option("--dir", help="Where the demo keeps its data.")] = Path("demo-data"),
    patients: Annotated[int, typer.Option(min=1, max=100_000, help="Generated patients per node.")] = 200,
    seed: Annotated[int, typer.Option()] = 42,
    rounds: Annotated[int, typer.Option(min=1, max=100, help="FedAvg rounds.")] = 3,
    keep_running: Annotated[bool, typer.Option("--keep-running", help="Leave the network up until Ctrl-C.")] = False,
) -> None:
    """Run a coordinator and three nodes, a federated count and a FedAvg job; print results and the console URL."""
    from medfed.demo import run_demo

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        run_demo(root=root, patients=patients, seed=seed, rounds=rounds, keep_running=keep_running, say=say)
    except MedfedError as exc:
        raise fail(exc) from None
