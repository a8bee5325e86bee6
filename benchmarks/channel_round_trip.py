"""No-op round trip over the node channel: p50/p95 of a federated count, push to reply, 3 and 10 nodes.

Network: a coordinator app served by uvicorn over TLS on 127.0.0.1 (in this process) and N enrolled nodes,
each its own ``medfed node start`` process with its own SQLite store (see :mod:`benchmarks.network`).
One sample = one count job: the job record is created in the coordinator's store (as the REST API does on
submission), then ``run_count(MedfedGrid(ChannelTransport))`` pushes one ``query`` per node (persisted,
long-poll woken), each node fetches it over its signed TLS long-poll, counts its Patients and posts the
reply, and the Grid returns all replies. Timed: ``submit`` (job record + Grid + run_count) and ``grid``
(run_count alone, push to the last reply).

Same-run baseline: the same ``run_count`` over ``InMemoryTransport`` with the same nodes' data and apps
in this process (no network, no persistence). The ratio channel/in-memory is printed.

``--during-fedavg``: the same sampling at 3 nodes while a thread runs a FedAvg MLP job (2,000 rows/node,
hidden (64, 64)) on the same nodes; samples are taken only while the job is running.

Usage: python -m benchmarks.channel_round_trip [--nodes 3 10] [--samples 60] [--warmup 5] [--during-fedavg]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

if not __package__:  # run as a file (python benchmarks/NAME.py): put the repo root on sys.path
    import _script  # type: ignore[import-not-found]  # noqa: F401  # benchmarks/_script.py

from benchmarks.network import (
    COUNT_SPEC,
    FEDAVG_SPEC,
    PATIENTS_PER_NODE,
    Network,
    machine,
    medfed_network,
    percentile,
    print_table,
)
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.count import run_count
from coordinator.federation.jobs.fedavg import run_fedavg
from coordinator.federation.transport import Transport

TIMEOUT_S = 30.0


def _sample_channel(network: Network, n_nodes: int, ends: dict[str, float] | None = None) -> tuple[float, float]:
    """One count job over the channel: (submit-to-result s, grid push-to-reply s); notes its end in ``ends``."""
    transport = network.transport()
    started = time.perf_counter()
    job_id = network.job(COUNT_SPEC)
    grid = MedfedGrid(transport, job_id=job_id)
    pushed = time.perf_counter()
    total = run_count(grid, timeout=TIMEOUT_S)
    done = time.perf_counter()
    if ends is not None:
        ends[job_id] = time.time()
    assert total == n_nodes * PATIENTS_PER_NODE, total
    return done - started, done - pushed


def _breakdown(network: Network, ends: dict[str, float]) -> str:
    """Medians from the coordinator's own timestamps: push -> node fetched -> reply stored -> Grid returned."""
    query = sa.text(
        "SELECT m.job_id, m.created_at, m.delivered_at, r.received_at FROM channel_message m "
        "JOIN channel_reply r ON r.message_id = m.id WHERE m.job_id = :job"
    )
    fetched: list[float] = []
    answered: list[float] = []
    returned: list[float] = []
    with network.coordinator.engine.connect() as conn:
        for job_id, end in ends.items():
            rows = conn.execute(query, {"job": job_id}).all()
            for _, created, delivered, received in rows:
                fetched.append((delivered - created) / 1000)
                answered.append((received - delivered) / 1000)
            if rows:
                returned.append(end * 1000 - max(row[3] for row in rows) / 1000)
    return (
        f"per message, medians: push->delivered to node {statistics.median(fetched):.1f} ms, "
        f"delivered->reply stored {statistics.median(answered):.1f} ms; "
        f"last reply stored->Grid returned {statistics.median(returned):.1f} ms"
    )


def _sample_memory(transport: Transport, n_nodes: int) -> float:
    started = time.perf_counter()
    total = run_count(MedfedGrid(transport, job_id=str(uuid.uuid4())), timeout=TIMEOUT_S)
    assert total == n_nodes * PATIENTS_PER_NODE, total
    return time.perf_counter() - started


def _collect(sample: Callable[[], tuple[float, float]], samples: int, warmup: int) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        sample()
    submit: list[float] = []
    grid: list[float] = []
    for _ in range(samples):
        a, b = sample()
        submit.append(a)
        grid.append(b)
    return submit, grid


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.1f}"


def bench_nodes(workdir: Path, n_nodes: int, samples: int, warmup: int, during_fedavg: bool) -> list[list[str]]:
    """Rows of the table for one network size."""
    rows: list[list[str]] = []
    started = time.perf_counter()
    with medfed_network(workdir, n_nodes) as network:
        print(f"  {n_nodes} node processes online in {time.perf_counter() - started:.1f} s", flush=True)
        with network.memory_transport("count", ["query"]) as memory:
            baseline, _ = _collect(lambda: (_sample_memory(memory, n_nodes), 0.0), samples, warmup)
        ends: dict[str, float] = {}
        submit, grid = _collect(lambda: _sample_channel(network, n_nodes, ends), samples, warmup)
        print(f"  {n_nodes} nodes idle: {_breakdown(network, ends)}", flush=True)
        base_p50 = percentile(baseline, 50)
        rows.append(
            [
                f"{n_nodes} nodes, idle",
                f"{len(grid)}",
                f"{_ms(grid, 50)} / {_ms(grid, 95)}",
                f"{_ms(submit, 50)} / {_ms(submit, 95)}",
                f"{_ms(baseline, 50)} / {_ms(baseline, 95)}",
                f"{percentile(grid, 50) / base_p50:.1f}x",
            ]
        )
        if during_fedavg:
            rows.append(_during_fedavg(network, n_nodes, samples, base_p50, baseline))
    return rows


def _during_fedavg(network: Network, n_nodes: int, samples: int, base_p50: float, baseline: list[float]) -> list[str]:
    """Count round trips sampled while a FedAvg job runs on the same nodes."""
    rounds_done: list[float] = []
    failure: list[BaseException] = []

    def fedavg() -> None:
        grid = MedfedGrid(network.transport(), job_id=network.job({**FEDAVG_SPEC, "rounds": rounds}, seed=7))
        started = time.perf_counter()
        try:
            run_fedavg(grid, rounds=rounds, seed=7, min_nodes=n_nodes, timeout=120)
        except BaseException as exc:  # reported below
            failure.append(exc)
        rounds_done.append(time.perf_counter() - started)

    rounds = 40
    thread = threading.Thread(target=fedavg, name="bench-fedavg", daemon=True)
    thread.start()
    time.sleep(2.0)  # let the job's first round start
    submit: list[float] = []
    grid: list[float] = []
    while thread.is_alive():
        a, b = _sample_channel(network, n_nodes)
        if not thread.is_alive():
            break
        submit.append(a)
        grid.append(b)
    thread.join()
    if failure:
        raise RuntimeError("the FedAvg job failed") from failure[0]
    print(f"  FedAvg job ({rounds} rounds) ran {rounds_done[0]:.1f} s; {len(grid)} count samples during it")
    if len(grid) < samples:
        print(f"  warning: only {len(grid)} samples (asked for {samples}); raise the job's rounds")
    return [
        f"{n_nodes} nodes, during FedAvg",
        f"{len(grid)}",
        f"{_ms(grid, 50)} / {_ms(grid, 95)}",
        f"{_ms(submit, 50)} / {_ms(submit, 95)}",
        f"{_ms(baseline, 50)} / {_ms(baseline, 95)} (idle)",
        f"{statistics.median(grid) / base_p50:.1f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--during-fedavg", action="store_true", help="also sample at 3 nodes during a FedAvg job")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="medfed-bench-", dir=args.workdir) as tmp:
        for n_nodes in args.nodes:
            rows += bench_nodes(Path(tmp), n_nodes, args.samples, args.warmup, args.during_fedavg and n_nodes == 3)
    print_table(
        "No-op round trip (count query), ms",
        [
            "network",
            "samples",
            "channel: grid push->reply p50 / p95",
            "channel: submit->result p50 / p95",
            "in-memory baseline p50 / p95",
            "ratio p50",
        ],
        rows,
    )
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
