"""FedAvg MLP rounds: medfed's node channel against local compute and against stock Flower 1.42.

The job (medfed's built-in ``fedavg_mlp``): 3 nodes, 2,000 generated rows each (30 features, the last
fifth held out), MLP 30 -> 64 -> 64 -> 1, SGD lr 0.05, batch 32, 1 local epoch, Flower's ``FedAvg`` with
train + evaluate on every node every round.

* medfed: a TLS coordinator in this process and 3 ``medfed node start`` processes
  (:mod:`benchmarks.network`); ``run_fedavg`` on ``MedfedGrid(ChannelTransport)``. A one-round job runs
  first as warm-up. A round is timed from the start of its ``train`` send-and-receive to the start of the
  next round's (the last round: to the job's end), so it includes evaluation and aggregation.
* Local compute, same run: the same training and evaluation of the three nodes' models done with plain
  torch in this process, one model after another (:func:`benchmarks.network.local_round`), one warm-up
  round, then the same number of rounds. Overhead = medfed round - local round (medians).
* Stock Flower, same run: ``flower-superlink`` + 3 ``flower-supernode`` processes (insecure, loopback, one
  ``FLWR_HOME`` each) and ``flwr run`` of ``benchmarks/flower_app`` (the same FedAvg, MLP, configs and
  training code); the ServerApp records its own round starts. Ratio = Flower round / medfed round.

Usage: python -m benchmarks.fedavg_rounds [--rounds 5] [--flower-rounds 5] [--skip-flower]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from flwr.app import Message

if not __package__:  # run as a file (python benchmarks/NAME.py): put the repo root on sys.path
    import _script  # type: ignore[import-not-found]  # noqa: F401  # benchmarks/_script.py

from benchmarks.network import (
    FEDAVG_SPEC,
    VENV_BIN,
    child_env,
    free_port,
    local_round,
    machine,
    medfed_network,
    node_features,
    print_table,
    stop_process,
)
from common.models import build_model
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.fedavg import run_fedavg

SEED = 1
SUPERLINK_FLAGS = ("--disable-runtime-dependency-installation", "--insecure")
FLOWER_APP = Path(__file__).resolve().parent / "flower_app"


class TimedGrid(MedfedGrid):
    """MedfedGrid that notes when each send-and-receive starts and with which message type."""

    calls: list[tuple[float, str]]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        batch = list(messages)
        self.calls.append((time.time(), batch[0].metadata.message_type if batch else ""))
        return super().send_and_receive(batch, timeout=timeout)


def round_times(calls: Sequence[tuple[float, str]], ended: float) -> list[float]:
    """Per-round seconds: from each train send to the next (the last: to ``ended``)."""
    starts = [at for at, kind in calls if kind == "train"]
    return [b - a for a, b in zip(starts, [*starts[1:], ended], strict=True)]


def medfed_rounds(workdir: Path, rounds: int) -> tuple[list[float], list[float]]:
    """Per-round seconds of a FedAvg job over the channel, and of the same local compute in plain torch.

    The local rounds run after the warm-up job, while the idle node processes wait on their long-polls.
    """
    with medfed_network(workdir, 3) as network:
        run_fedavg(
            MedfedGrid(network.transport(), job_id=network.job({**FEDAVG_SPEC, "rounds": 1}, seed=SEED + 100)),
            rounds=1,
            seed=SEED + 100,
            min_nodes=3,
            timeout=120,
        )
        local = local_rounds([site.flower_node_id for site in network.nodes], rounds)
        grid = TimedGrid(network.transport(), job_id=network.job({**FEDAVG_SPEC, "rounds": rounds}, seed=SEED))
        grid.calls = []
        started = time.time()
        run_fedavg(grid, rounds=rounds, seed=SEED, min_nodes=3, timeout=120)
        ended = time.time()
        print(f"  medfed: {rounds} rounds in {ended - started:.2f} s", flush=True)
        return round_times(grid.calls, ended), local


def local_rounds(node_ids: Sequence[int], rounds: int) -> list[float]:
    """Per-round seconds of the same local compute in plain torch (three warm-up rounds first)."""
    datasets = [node_features(SEED, node_id) for node_id in node_ids]
    state = build_model("mlp", in_features=30, hidden=(64, 64), seed=SEED).state_dict()
    for _ in range(3):
        local_round(datasets, state)
    return [local_round(datasets, state, seed=r) for r in range(rounds)]


def _cmd(name: str, *args: str) -> list[str]:
    return [str(VENV_BIN / name), *args]


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def flower_rounds(workdir: Path, rounds: int, timeout_s: float) -> list[float]:
    """Per-round seconds of the same job on stock Flower's deployment engine."""
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        home = workdir / f"flwr-home-{name}"
        home.mkdir()
        log = (workdir / f"{name}.log").open("wb")
        logs.append(log)
        process = subprocess.Popen(
            argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=child_env(FLWR_HOME=str(home))
        )
        processes.append(process)
        return process

    timings = workdir / "flower-timings.json"
    try:
        start(
            "superlink",
            [*_cmd("flower-superlink", "--host", "127.0.0.1", "--port", str(port)), *SUPERLINK_FLAGS],
        )
        _wait_port(port, 60)
        for i in range(3):
            start(
                f"supernode-{i}",
                [
                    *_cmd("flower-supernode", "--superlink", f"127.0.0.1:{port}", "--port", str(free_port())),
                    *("--insecure", "--node-config", f"partition-id={i} num-partitions=3"),
                ],
            )
        cli_home = workdir / "flwr-home-cli"
        cli_home.mkdir()
        (cli_home / "config.toml").write_text(
            f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "127.0.0.1:{port}"\ninsecure = true\n'
        )
        time.sleep(3)  # let the SuperNodes register
        started = time.time()
        run = subprocess.run(
            [
                *_cmd("flwr", "run", str(FLOWER_APP), "bench", "--stream", "--run-config"),
                f"num-server-rounds={rounds} seed={SEED} timings-file='{timings}'",
            ],
            cwd=workdir,
            env=child_env(FLWR_HOME=str(cli_home)),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        deadline = time.monotonic() + 60
        while not timings.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        if not timings.exists():
            tail = (run.stdout + run.stderr).decode(errors="replace")[-3000:]
            raise RuntimeError(f"the Flower run wrote no timings (flwr run exit {run.returncode}):\n{tail}")
        data: dict[str, Any] = json.loads(timings.read_text())
        print(
            f"  Flower: flwr run -> job end {data['ended'] - started:.1f} s; "
            f"ServerApp strategy {data['ended'] - data['started']:.1f} s for {rounds} rounds",
            flush=True,
        )
        return round_times([(at, kind) for at, kind in data["calls"]], float(data["ended"]))
    finally:
        for process in reversed(processes):
            stop_process(process)
        for log in logs:
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flower-rounds", type=int, default=5)
    parser.add_argument("--flower-timeout", type=float, default=480.0)
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="medfed-bench-", dir=args.workdir) as tmp:
        medfed, local = medfed_rounds(Path(tmp), args.rounds)
        flower: list[float] = []
        if not args.skip_flower:
            flower_dir = Path(tmp) / "flower"
            flower_dir.mkdir()
            flower = flower_rounds(flower_dir, args.flower_rounds, args.flower_timeout)

    def fmt(values: Sequence[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    m_med, l_med = statistics.median(medfed), statistics.median(local)
    rows = [
        ["medfed channel (3 node processes, TLS)", str(len(medfed)), fmt(medfed), f"{m_med:.3f}", "1.0x"],
        ["plain torch, in-process, 3 models in turn", str(len(local)), fmt(local), f"{l_med:.3f}", ""],
    ]
    if flower:
        f_med = statistics.median(flower)
        rows.append(
            [
                "stock Flower 1.42 (superlink + 3 supernodes)",
                str(len(flower)),
                fmt(flower),
                f"{f_med:.3f}",
                f"{f_med / m_med:.1f}x slower",
            ]
        )
    print_table("FedAvg MLP, 3 nodes, per round (s)", ["set-up", "rounds", "each round", "median", "vs medfed"], rows)
    print(f"medfed round overhead above local compute (medians): {m_med - l_med:.3f} s (target <= 0.5 s)")
    print(f"medfed / local compute: {m_med / l_med:.1f}x")
    print(f"machine after: {machine()}; pid {os.getpid()}")


if __name__ == "__main__":
    main()
