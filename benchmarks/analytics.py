"""Federated analytics on a running network: count, histogram and a binomial GLM, each against its baseline.

Data: a **generated tabular dataset** (not the node's FHIR generator), 100,000 rows per node, registered
on each node as the Parquet dataset ``patients``: age (integer, 18-90), sex (0/1), ten numeric
covariates ``x1..x10`` (decimals) and a 0/1 outcome ``y`` drawn from a logistic model of them, each
node with its own covariate shift. Rows are synthetic: no patient data.

Network: a TLS coordinator in this process (the integration tests' ``running_coordinator``; its app's
job runner runs the jobs) and 5 node processes (``medfed node start`` on enrolled data directories,
disclosure control off via ``disclosure.yaml``, exactly as a deployed node), all on this machine.

* **count and histogram, 5 nodes x 100k.** A sample is one ``analysis`` job submitted over the REST API
  (the researcher SDK's ``submit_analysis``) and timed until its result has been fetched: POST, the
  runner's worker, one ``query`` per node over the channel (each node loads and checks its dataset —
  a job pins its own snapshot — counts or bins it, replies), merge, GET results. Baseline in the same
  run, right after each sample: the five nodes' **local queries run concurrently** (five worker
  processes, one per node data directory, each doing what the node does: load the registered dataset,
  SHA-256 checked and schema enforced, then the same count or histogram), timed inside each worker;
  the slowest of the five is the baseline. Target: federated <= 1.2 x slowest local + 50 ms (medians).
* **GLM, binomial, 10 covariates, 4 nodes** (400,000 rows): the job (design round + IRLS rounds over
  the channel) against statsmodels' ``GLM(...).fit()`` on the pooled rows in this process, same run.

Usage: python -m benchmarks.analytics [--rows 100000] [--samples 10] [--glm-samples 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import statsmodels.api as sm  # type: ignore[import-untyped]  # no stubs or py.typed

if not __package__:  # run as a file (python benchmarks/NAME.py): put the repo root on sys.path
    import _script  # type: ignore[import-not-found]  # noqa: F401  # benchmarks/_script.py

from benchmarks.network import machine, print_table, start_node_processes, stop_node_processes, wait_online
from common.analytics.local import run_local
from common.flower import ensure_task_identity
from coordinator.federation.channel_transport import ChannelTransport
from coordinator.federation.runner import JobRunner
from medfed.sdk import Federation
from node.config import NodeSettings
from node.datasets.registry import register_dataset
from node.datasets.schema import DatasetSchema
from node.federation.sources import load_dataset_source
from node.identity import enrol
from node.runtime import init_node
from tests.integration.test_enrolment import Coordinator, running_coordinator
from tests.researchers import add_researcher

N_NODES = 5
GLM_NODES = 4
N_COVARIATES = 10
DATASET = "patients"
JOB_WAIT_S = 300.0
COUNT_PARAMS: dict[str, Any] = {"columns": ["age", "sex", "x1"]}
HISTOGRAM_PARAMS: dict[str, Any] = {"column": "age", "lower": 0, "upper": 120, "bins": 24}
GLM_PARAMS: dict[str, Any] = {
    "family": "binomial",
    "response": "y",
    "covariates": [{"column": f"x{i}"} for i in range(1, N_COVARIATES + 1)],
}
SCHEMA = DatasetSchema.model_validate(
    {
        "description": "generated benchmark patients (synthetic)",
        "format": "parquet",
        "columns": [
            {"name": "age", "type": "integer", "bounds": [0, 120]},
            {"name": "sex", "type": "integer", "levels": [0, 1]},
            *({"name": f"x{i}", "type": "decimal", "bounds": [-50, 50]} for i in range(1, N_COVARIATES + 1)),
            {"name": "y", "type": "integer", "levels": [0, 1]},
        ],
    }
)


def generate(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` synthetic patients for one node (its own covariate shift; one true model for all)."""
    weights = np.random.default_rng(2024).normal(scale=0.4, size=N_COVARIATES)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_COVARIATES)) + rng.normal(scale=0.3, size=N_COVARIATES)
    logits = -0.5 + x @ weights
    frame = pd.DataFrame(np.round(x, 6), columns=[f"x{i}" for i in range(1, N_COVARIATES + 1)])
    frame.insert(0, "sex", rng.integers(0, 2, rows))
    frame.insert(0, "age", rng.integers(18, 91, rows))
    frame["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    return frame


@dataclass
class Site:
    """One node: data directory, node id, process and log."""

    data_dir: Path
    node_id: str
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None


@contextmanager
def analytics_network(workdir: Path, rows: int) -> Iterator[tuple[Coordinator, list[Site]]]:
    """A TLS coordinator and ``N_NODES`` node processes, each with its generated ``patients`` dataset."""
    ensure_task_identity()
    with ExitStack() as stack:
        coordinator = stack.enter_context(running_coordinator(workdir, f"sqlite:///{workdir / 'coordinator.db'}"))
        sites: list[Site] = []
        for index in range(N_NODES):
            node_dir = workdir / f"node-{index}"
            init_node(NodeSettings(data_dir=node_dir))
            source = workdir / f"patients-{index}.parquet"
            generate(rows, seed=index).to_parquet(source, index=False)
            register_dataset(node_dir, DATASET, source, SCHEMA)
            (node_dir / "disclosure.yaml").write_text("enabled: false\n", encoding="utf-8")
            identity = enrol(node_dir, coordinator.code(f"Bench site {index} {uuid.uuid4().hex[:6]}"), version="bench")
            sites.append(Site(node_dir, identity.node_id))
        stack.callback(stop_node_processes, sites)
        start_node_processes(sites)
        transport = ChannelTransport(coordinator.engine, coordinator.app.state.notifier, offline_after_s=60)
        wait_online(transport, sites, timeout_s=180.0)
        yield coordinator, sites


def federated(client: Federation, runner: JobRunner, spec: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """One job from submission to fetched result: (seconds, result document)."""
    started = time.perf_counter()
    job = client.submit_analysis(spec)
    if not runner.join(job["id"], JOB_WAIT_S):
        raise RuntimeError("the job did not end in time")
    outcome = client.results(job["id"])
    elapsed = time.perf_counter() - started
    if outcome["status"] != "succeeded":
        raise RuntimeError(f"the job {outcome['status']}: {outcome['error']}")
    document: dict[str, Any] = outcome["result"]
    return elapsed, document


def local_query(data_dir: str, analysis: str, params: dict[str, Any]) -> float:
    """What one node does for the analysis, without the network: load its dataset, compute; seconds."""
    started = time.perf_counter()
    frame = load_dataset_source(Path(data_dir), DATASET).frame
    run_local(analysis, params, [frame])
    return time.perf_counter() - started


def slowest_local(pool: ProcessPoolExecutor, sites: Sequence[Site], analysis: str, params: dict[str, Any]) -> float:
    """The five local queries at once, one per worker process; the slowest one's seconds."""
    futures = [pool.submit(local_query, str(site.data_dir), analysis, params) for site in sites]
    return max(future.result() for future in futures)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def bench_cell_queries(
    client: Federation, runner: JobRunner, sites: Sequence[Site], pool: ProcessPoolExecutor, samples: int
) -> list[list[str]]:
    rows: list[list[str]] = []
    for analysis, params in (("count", COUNT_PARAMS), ("histogram", HISTOGRAM_PARAMS)):
        spec = {"analysis": analysis, "params": params, "source": {"dataset": DATASET}}
        federated(client, runner, spec)  # warm-up: first job of its kind
        slowest_local(pool, sites, analysis, params)
        fed: list[float] = []
        local: list[float] = []
        for _ in range(samples):
            fed.append(federated(client, runner, spec)[0])
            local.append(slowest_local(pool, sites, analysis, params))
        fed_p50, local_p50 = statistics.median(fed), statistics.median(local)
        target = 1.2 * local_p50 + 0.050
        rows.append(
            [
                analysis,
                str(samples),
                f"{_ms(fed_p50)} ({_ms(min(fed))}-{_ms(max(fed))})",
                f"{_ms(local_p50)} ({_ms(min(local))}-{_ms(max(local))})",
                f"{fed_p50 / local_p50:.2f}x",
                _ms(target),
                "met" if fed_p50 <= target else "NOT met",
            ]
        )
    return rows


def bench_glm(client: Federation, runner: JobRunner, sites: Sequence[Site], rows: int, samples: int) -> list[list[str]]:
    chosen = sites[:GLM_NODES]
    spec = {
        "analysis": "glm",
        "params": GLM_PARAMS,
        "source": {"dataset": DATASET},
        "nodes": [site.node_id for site in chosen],
    }
    pooled = pd.concat([generate(rows, seed=index) for index in range(GLM_NODES)], ignore_index=True)
    columns = [f"x{i}" for i in range(1, N_COVARIATES + 1)]
    design = sm.add_constant(pooled[columns].astype(float))
    fed: list[float] = []
    ref: list[float] = []
    document: dict[str, Any] = {}
    for _ in range(samples):
        seconds, document = federated(client, runner, spec)
        fed.append(seconds)
        started = time.perf_counter()
        reference = sm.GLM(pooled["y"].astype(float), design, family=sm.families.Binomial()).fit()
        ref.append(time.perf_counter() - started)
    result = document["result"]
    error = float(np.max(np.abs(np.asarray(result["params"]) - reference.params.to_numpy()) / np.abs(reference.params)))
    fed_p50, ref_p50 = statistics.median(fed), statistics.median(ref)
    return [
        [
            f"GLM binomial, {N_COVARIATES} covariates, {GLM_NODES} x {rows:,} rows",
            str(samples),
            f"{_ms(fed_p50)} ({document['rounds']} rounds)",
            f"{_ms(ref_p50)} (statsmodels, pooled)",
            f"{fed_p50 / ref_p50:.2f}x",
            f"{error:.1e}",
        ]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="Rows per node.")
    parser.add_argument("--samples", type=int, default=10, help="Samples per count/histogram.")
    parser.add_argument("--glm-samples", type=int, default=3, help="Samples of the GLM job.")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="medfed-analytics-") as tmp:
        started = time.perf_counter()
        with analytics_network(Path(tmp), args.rows) as (coordinator, sites):
            print(f"network of {N_NODES} node processes up in {time.perf_counter() - started:.1f} s", flush=True)
            runner: JobRunner = coordinator.app.state.runner
            ca_file = Path(tmp) / "ca.pem"
            ca_file.write_bytes(coordinator.identity.ca_pem)
            researcher = add_researcher(coordinator.engine, coordinator.settings.data_dir, Path(tmp) / "keys")
            spawn = multiprocessing.get_context("spawn")
            with (
                researcher.federation(coordinator.url, ca_file) as client,
                ProcessPoolExecutor(max_workers=N_NODES, mp_context=spawn) as pool,
            ):
                cells = bench_cell_queries(client, runner, sites, pool, args.samples)
                print_table(
                    f"count and histogram, {N_NODES} nodes x {args.rows:,} rows (ms: median (min-max))",
                    [
                        "analysis",
                        "samples",
                        "federated, submit->result",
                        "slowest of 5 concurrent local",
                        "ratio",
                        "target ms",
                        "target",
                    ],
                    cells,
                )
                print(f"machine after: {machine()}", flush=True)
                glm = bench_glm(client, runner, sites, args.rows, args.glm_samples)
                print_table(
                    "GLM (ms: median)",
                    ["job", "samples", "federated, submit->result", "baseline", "ratio", "max rel. coef. diff"],
                    glm,
                )
    print(f"machine at the end: {machine()}", flush=True)


if __name__ == "__main__":
    main()
