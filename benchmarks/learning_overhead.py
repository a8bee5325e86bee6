"""What a federated learning job costs on medfed beyond its training, and what it costs the FHIR API.

The job: FedAvg in FLamby's Fed-Heart-Disease configuration (:mod:`benchmarks.flamby`): 4 nodes (one per
centre, FLamby's splits, per-centre standardisation), logistic regression, 15 rounds of 100 local SGD
updates with batch 4 at FLamby's FedAvg learning rate, evaluation on each node's test split every round.
All in one run, on the same data:

(a) **medfed**: a TLS coordinator in this process and 4 ``medfed node start`` processes
    (:mod:`benchmarks.network`), each holding its centre as a registered dataset; the job is submitted
    through the REST API (:class:`medfed.sdk.Federation`) and timed from submission until the API reports
    it ended. The network is up and idle before (a running network); ``--jobs`` jobs, each timed.
(b) **plain torch**, in this process: the same training one node after another: the same prepared rows,
    the same minibatch orders (:func:`node.federation.apps.learning.epoch_seed`), the same number of
    batch updates, per-round evaluation and FedAvg weighting; one warm-up job first. The max difference
    between its final weights and medfed's exported model is printed as a check that both did the same work.
(c) **stock Flower 1.42**: ``flower-superlink`` + 4 ``flower-supernode`` processes on loopback (insecure,
    one ``FLWR_HOME`` each) and ``flwr run`` of ``benchmarks/flower_learning_app`` (Flower's ``FedAvg``
    over medfed's own ``learning`` ClientApp on copies of the same registered datasets) for
    ``--flower-rounds`` rounds, extrapolated to the job's rounds: start-up (``flwr run`` to the
    ServerApp's first round) + rounds x median round.
(d) **FHIR read latency** on node 0: ``httpx`` (keep-alive) reading ``GET /fhir/Patient/{id}`` with a
    clinician token in a loop, first idle, then while a heavier training job of the same kind runs on
    all four nodes (``--busy-steps`` local updates per round: the nodes' CPUs are busy training). The node
    trains on its background pool (niceness 10) with ``MEDFED_NODE_TRAINING_THREADS`` torch threads.

Target (issue 5): medfed total <= 2 x plain torch + 10 s.

Usage: python -m benchmarks.learning_overhead [--jobs 2] [--flower-rounds 3] [--skip-flower]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
import torch
import yaml

if not __package__:  # run as a file (python benchmarks/NAME.py): put the repo root on sys.path
    import _script  # type: ignore[import-not-found]  # noqa: F401  # benchmarks/_script.py

from benchmarks.fedavg_rounds import SUPERLINK_FLAGS
from benchmarks.flamby import STRATEGIES, Dataset, job_spec, load_dataset
from benchmarks.network import (
    VENV_BIN,
    Network,
    NodeSite,
    child_env,
    free_port,
    machine,
    medfed_network,
    percentile,
    print_table,
    stop_process,
)
from common.models import build_model
from common.models.checkpoints import load_state_dict
from common.models.features import Prepared, prepare
from common.models.losses import binary_cross_entropy_loss
from common.models.metrics import binary_accuracy
from coordinator.federation.jobs.learning import LearningSpec, initial_arrays
from medfed.sdk import Federation
from node.datasets.registry import register_dataset
from node.datasets.schema import load_schema
from node.federation.apps.learning import epoch_seed
from node.federation.sources import load_dataset_source
from node.store.tokens import Role as NodeRole
from node.store.tokens import create_token as create_node_token

SEED = 42
FLOWER_APP = Path(__file__).resolve().parent / "flower_learning_app"
JOB_TIMEOUT_S = 1800.0


# --- the job and its data -------------------------------------------------------------------------


def heart_fedavg(dataset: Dataset) -> dict[str, Any]:
    """FLamby's heart FedAvg as a medfed learning job spec (4 nodes, quorum 4)."""
    return job_spec(dataset, STRATEGIES["FedAvg"], first_node=0)  # first_node only matters to Cyclic


def register(dataset: Dataset, data_dirs: Sequence[Path], workdir: Path) -> None:
    """Centre ``i``'s rows registered as the dataset the task names, in data directory ``i``."""
    schema_file = workdir / f"{dataset.name}.schema.yaml"
    schema_file.write_text(yaml.safe_dump(dataset.schema, sort_keys=False), encoding="utf-8")
    schema = load_schema(schema_file)
    for index, (data_dir, frame) in enumerate(zip(data_dirs, dataset.centres, strict=True)):
        path = workdir / f"{dataset.name}-{index}.csv"
        frame.to_csv(path, index=False, na_rep="")
        data_dir.mkdir(parents=True, exist_ok=True)
        register_dataset(data_dir, dataset.name, path, schema)


# --- (b) plain torch --------------------------------------------------------------------------------


@dataclass
class _Centre:
    node_id: int
    rows: Prepared
    epoch: int = 0
    batch: int = 0
    order: torch.Tensor | None = None

    def next_batch(self, seed: int, batch_size: int) -> torch.Tensor:
        n = len(self.rows.train)
        if self.batch * batch_size >= n:
            self.epoch, self.batch, self.order = self.epoch + 1, 0, None
        if self.order is None:
            self.order = torch.randperm(
                n, generator=torch.Generator().manual_seed(epoch_seed(seed, self.node_id, self.epoch))
            )
        start = self.batch * batch_size
        self.batch += 1
        return self.order[start : start + batch_size]


def plain_torch(network: Network, spec: LearningSpec, seed: int) -> tuple[float, dict[str, torch.Tensor]]:
    """The job's training and evaluation, in this process, node after node; seconds and the final weights."""
    started = time.perf_counter()
    task = spec.task()
    centres = sorted(
        (
            _Centre(
                site.flower_node_id, prepare(load_dataset_source(site.data_dir, task.source.dataset or "").frame, task)
            )
            for site in network.nodes
        ),
        key=lambda centre: centre.node_id,
    )
    tensors = {
        c.node_id: [torch.from_numpy(a) for a in (c.rows.train.x, c.rows.train.y, c.rows.test.x, c.rows.test.y)]
        for c in centres
    }
    global_state: dict[str, torch.Tensor] = dict(initial_arrays(spec, seed).to_torch_state_dict())
    for _ in range(spec.rounds):
        updates: list[tuple[dict[str, torch.Tensor], int]] = []
        for centre in centres:
            x, y, x_test, y_test = tensors[centre.node_id]
            model = build_model(task.model, **task.model_params(), seed=0)
            model.load_state_dict(global_state)
            optimizer = torch.optim.SGD(model.parameters(), lr=task.lr, momentum=task.momentum)
            model.train()
            for _ in range(task.local_steps):
                rows = centre.next_batch(seed, task.batch_size)
                optimizer.zero_grad()
                loss = binary_cross_entropy_loss(model(x[rows]), y[rows])
                float(loss.item())
                torch.autograd.backward(loss)
                optimizer.step()
            updates.append(({k: v.detach().clone() for k, v in model.state_dict().items()}, int(x.shape[0])))
        global_state = _weighted_mean(updates)
        for centre in centres:  # evaluation of the new global model on each test split
            _, _, x_test, y_test = tensors[centre.node_id]
            model = build_model(task.model, **task.model_params(), seed=0)
            model.load_state_dict(global_state)
            model.eval()
            with torch.no_grad():
                scores = model(x_test).reshape(-1)
                float(binary_cross_entropy_loss(scores, y_test).item())
                binary_accuracy(scores.numpy(), y_test.numpy())
    return time.perf_counter() - started, global_state


def _weighted_mean(updates: Sequence[tuple[dict[str, torch.Tensor], int]]) -> dict[str, torch.Tensor]:
    """FedAvg's aggregate as Flower computes it: float32 arrays times each node's share of the examples."""
    total = sum(n for _, n in updates)
    summed: dict[str, np.ndarray[Any, Any]] = {}
    for state, n in updates:
        for key, value in state.items():
            part = value.numpy() * (n / total)
            summed[key] = part if key not in summed else summed[key] + part
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in summed.items()}


# --- (a) medfed -------------------------------------------------------------------------------------


def medfed_jobs(client: Federation, spec: dict[str, Any], jobs: int, model_file: Path) -> list[float]:
    """Seconds from submission to the job's end, per job; the last job's model saved to ``model_file``."""
    seconds: list[float] = []
    job_id = ""
    for _ in range(jobs):
        started = time.perf_counter()
        job_id = client.submit(spec, seed=SEED)["id"]
        done = client.wait(job_id, timeout=JOB_TIMEOUT_S, interval=0.05)
        seconds.append(time.perf_counter() - started)
        if done["status"] != "succeeded":
            raise RuntimeError(f"learning job {done['status']}: {done.get('error')}")
        print(f"  medfed job: {seconds[-1]:.2f} s ({len(done['rounds'])} rounds)", flush=True)
    client.save_model(job_id, model_file)
    return seconds


# --- (d) FHIR reads ---------------------------------------------------------------------------------


def node_port(site: NodeSite) -> int:
    """The HTTP port the node process was started on (its ``--port`` argument)."""
    assert site.process is not None
    args = [str(a) for a in site.process.args]  # type: ignore[union-attr]  # started with an argv list
    return int(args[args.index("--port") + 1])


def fhir_reader(site: NodeSite) -> tuple[httpx.Client, str]:
    """A keep-alive client of node ``site``'s FHIR API with a clinician token, and a Patient id to read."""
    _, token = create_node_token(site.service.engine, NodeRole.CLINICIAN, label="bench reader")
    patient = site.service.create(
        {"resourceType": "Patient", "gender": "male", "identifier": [{"system": "urn:bench", "value": "reader"}]}
    )
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{node_port(site)}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
        timeout=30.0,
        trust_env=False,
    )
    return client, patient.stored.id


def read_once(client: httpx.Client, patient_id: str) -> float:
    """Milliseconds of one ``GET /fhir/Patient/{id}`` (200 required)."""
    started = time.perf_counter()
    response = client.get(f"/fhir/Patient/{patient_id}")
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"FHIR read answered {response.status_code}")
    return elapsed


def reads_during_job(
    reader: httpx.Client, patient_id: str, client: Federation, spec: dict[str, Any]
) -> tuple[list[float], float]:
    """Read in a loop while a training job runs (from submission to its end); latencies and job seconds."""
    ended = threading.Event()
    outcome: dict[str, Any] = {}

    def wait() -> None:
        try:
            outcome.update(client.wait(job_id, timeout=JOB_TIMEOUT_S, interval=0.2))
        finally:
            ended.set()

    started = time.perf_counter()
    job_id = client.submit(spec, seed=SEED)["id"]
    waiter = threading.Thread(target=wait, name="bench-job-wait", daemon=True)
    waiter.start()
    latencies: list[float] = []
    while not ended.is_set():
        latencies.append(read_once(reader, patient_id))
    waiter.join()
    if outcome.get("status") != "succeeded":
        raise RuntimeError(f"training job {outcome.get('status')}: {outcome.get('error')}")
    return latencies, time.perf_counter() - started


# --- (c) stock Flower -------------------------------------------------------------------------------


@dataclass
class FlowerTimes:
    """A stock-Flower run: ``flwr run`` to the first round, each round, and to the end."""

    startup: float
    rounds: list[float]
    total: float

    def extrapolated(self, rounds: int) -> float:
        """Start-up plus ``rounds`` median rounds."""
        return self.startup + rounds * statistics.median(self.rounds)


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with httpx.Client(trust_env=False) as probe:
                probe.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def flower_run(
    workdir: Path, spec: dict[str, Any], data_dirs: Sequence[Path], rounds: int, timeout_s: float
) -> FlowerTimes:
    """The job for ``rounds`` rounds on Flower's deployment engine (one SuperNode per data directory)."""
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(name: str, argv: list[str]) -> None:
        home = workdir / f"flwr-home-{name}"
        home.mkdir()
        log = (workdir / f"{name}.log").open("wb")
        logs.append(log)
        env = child_env(FLWR_HOME=str(home))
        processes.append(subprocess.Popen(argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env))

    spec_file, timings = workdir / "spec.json", workdir / "flower-timings.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    try:
        start(
            "superlink",
            [str(VENV_BIN / "flower-superlink"), "--host", "127.0.0.1", "--port", str(port), *SUPERLINK_FLAGS],
        )
        _wait_port(port, 60)
        for i, data_dir in enumerate(data_dirs):
            start(
                f"supernode-{i}",
                [
                    *(
                        str(VENV_BIN / "flower-supernode"),
                        "--superlink",
                        f"127.0.0.1:{port}",
                        "--port",
                        str(free_port()),
                    ),
                    *("--insecure", "--node-config", f"partition-id={i} data-dir='{data_dir}'"),
                ],
            )
        cli_home = workdir / "flwr-home-cli"
        cli_home.mkdir()
        (cli_home / "config.toml").write_text(
            f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "127.0.0.1:{port}"\ninsecure = true\n'
        )
        started = time.time()
        run = subprocess.run(
            [
                *(str(VENV_BIN / "flwr"), "run", str(FLOWER_APP), "bench", "--stream", "--run-config"),
                f"num-server-rounds={rounds} seed={SEED} spec-file='{spec_file}' timings-file='{timings}'",
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
        data: dict[str, Any] = json.loads(timings.read_text(encoding="utf-8"))
        marks = [float(at) for _, at in sorted(data["marks"])]
        return FlowerTimes(
            startup=marks[0] - started,
            rounds=[b - a for a, b in itertools.pairwise(marks)],
            total=float(data["ended"]) - started,
        )
    finally:
        for process in reversed(processes):
            stop_process(process)
        for log in logs:
            log.close()


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything measured in one run."""

    plain: list[float]
    medfed: list[float]
    weight_gap: float
    accuracy: tuple[float, float]  # pooled-test accuracy: plain torch, medfed
    idle_ms: list[float]
    busy_ms: list[float]
    busy_job_s: float
    flower: FlowerTimes | None = None


def measure(args: argparse.Namespace, workdir: Path) -> Results:
    """(b), (a) and (d) on a running medfed network; (c) after it is stopped."""
    dataset = load_dataset("heart")
    spec = heart_fedavg(dataset)
    parsed = LearningSpec.model_validate(spec)
    flower_dirs = [workdir / "flower" / f"node-{i}" for i in range(len(dataset.centres))]
    register(dataset, flower_dirs, workdir)
    with medfed_network(workdir, len(dataset.centres)) as network:
        register(dataset, [site.data_dir for site in network.nodes], workdir)
        plain_torch(network, parsed, SEED)  # warm-up: torch's first optimizer step, the data files
        plain = [plain_torch(network, parsed, SEED) for _ in range(args.jobs)]
        print(f"  plain torch: {', '.join(f'{s:.2f}' for s, _ in plain)} s", flush=True)
        ca_file = workdir / "ca.pem"
        ca_file.write_bytes(network.coordinator.identity.ca_pem)
        model_file = workdir / "medfed-model.pt"
        with network.researcher.federation(network.coordinator.url, ca_file) as client:
            medfed = medfed_jobs(client, spec, args.jobs, model_file)
            exported = load_state_dict(model_file)
            reference = plain[-1][1]
            gap = max(float((exported[k] - reference[k]).abs().max()) for k in reference)
            accuracy = (_pooled_accuracy(dataset, parsed, reference), _pooled_accuracy(dataset, parsed, exported))
            reader, patient_id = fhir_reader(network.nodes[0])
            with reader:
                for _ in range(20):  # connection and first-request warm-up
                    read_once(reader, patient_id)
                idle = [read_once(reader, patient_id) for _ in range(args.fhir_reads)]
                busy_spec = {**spec, "local_steps": args.busy_steps, "rounds": args.busy_rounds}
                busy, busy_job_s = reads_during_job(reader, patient_id, client, busy_spec)
    results = Results([s for s, _ in plain], medfed, gap, accuracy, idle, busy, busy_job_s)
    if not args.skip_flower:
        flower_dir = workdir / "flower-run"
        flower_dir.mkdir()
        results.flower = flower_run(flower_dir, spec, flower_dirs, args.flower_rounds, args.flower_timeout)
    return results


def _pooled_accuracy(dataset: Dataset, spec: LearningSpec, state: dict[str, torch.Tensor]) -> float:
    task = spec.task()
    model = build_model(task.model, **task.model_params(), seed=0)
    model.load_state_dict(state)
    model.eval()
    x, y = dataset.pooled_test
    with torch.no_grad():
        return binary_accuracy(model(torch.from_numpy(x)).reshape(-1).numpy(), y)


def report(results: Results, rounds: int) -> None:
    """The comparison table, the target check and the FHIR latency table."""
    plain, medfed = statistics.median(results.plain), statistics.median(results.medfed)
    rows = [
        [
            "medfed (coordinator + 4 node processes, TLS)",
            _each(results.medfed),
            f"{medfed:.2f}",
            f"{medfed / rounds:.3f}",
        ],
        ["plain torch, in-process, nodes in turn", _each(results.plain), f"{plain:.2f}", f"{plain / rounds:.3f}"],
    ]
    if results.flower is not None:
        flower = results.flower
        per_round = statistics.median(flower.rounds)
        rows.append(
            [
                f"stock Flower 1.42 (superlink + 4 supernodes), {len(flower.rounds)} rounds, extrapolated",
                f"start-up {flower.startup:.1f}; rounds {_each(flower.rounds)}",
                f"{flower.extrapolated(rounds):.1f}",
                f"{per_round:.2f}",
            ]
        )
    print_table(
        f"FedAvg, FLamby heart (4 nodes, logistic regression, {rounds} rounds), submission to result (s)",
        ["set-up", "each run", "median", "per round"],
        rows,
    )
    target = 2 * plain + 10
    verdict = "pass" if max(results.medfed) <= target else "FAIL"
    print(
        f"medfed / plain torch: {medfed / plain:.1f}x; overhead {medfed - plain:.2f} s "
        f"({(medfed - plain) / rounds:.3f} s per round)"
    )
    print(f"target: slowest medfed job {max(results.medfed):.2f} s <= 2 x {plain:.2f} + 10 = {target:.2f} s: {verdict}")
    if results.flower is not None:
        print(f"stock Flower (extrapolated) / medfed: {results.flower.extrapolated(rounds) / medfed:.1f}x")
    print(
        f"same work: max |medfed - plain torch| weight {results.weight_gap:.2e}; pooled-test accuracy "
        f"plain {results.accuracy[0]:.3f}, medfed {results.accuracy[1]:.3f}"
    )
    idle, busy = results.idle_ms, results.busy_ms
    print_table(
        "FHIR GET /fhir/Patient/{id} on node 0, httpx keep-alive, sequential (ms)",
        ["while", "reads", "p50", "p95", "p99", "max"],
        [
            ["idle", str(len(idle)), *(f"{percentile(idle, q):.1f}" for q in (50, 95, 99)), f"{max(idle):.1f}"],
            [
                f"a training job runs on all 4 nodes ({results.busy_job_s:.1f} s)",
                str(len(busy)),
                *(f"{percentile(busy, q):.1f}" for q in (50, 95, 99)),
                f"{max(busy):.1f}",
            ],
        ],
    )
    print(f"FHIR p95 during training / idle: {percentile(busy, 95) / percentile(idle, 95):.1f}x")


def _each(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the four measurements and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="timed medfed jobs (and plain-torch runs)")
    parser.add_argument("--fhir-reads", type=int, default=300, help="idle FHIR reads")
    parser.add_argument("--busy-steps", type=int, default=3000, help="local updates per round of the busy job")
    parser.add_argument("--busy-rounds", type=int, default=3)
    parser.add_argument("--flower-rounds", type=int, default=3)
    parser.add_argument("--flower-timeout", type=float, default=480.0)
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the nodes train (MEDFED_NODE_TRAINING_THREADS defaults to 1)
    logging.getLogger("flwr").setLevel(logging.WARNING)  # the in-process coordinator's per-round lines
    print(f"machine: {machine()}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="medfed-learning-", dir=args.workdir))
    try:
        results = measure(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(results, load_dataset("heart").rounds)
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
