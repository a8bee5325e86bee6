"""A running medfed network for the channel benchmarks: a TLS coordinator and enrolled node processes.

The coordinator app is served by uvicorn over TLS on 127.0.0.1 in this process (the integration tests'
``running_coordinator``), so the benchmark drives ``MedfedGrid(ChannelTransport)`` directly. Each node is
its own OS process, ``medfed node start`` on an enrolled data directory (its own SQLite store, patients,
keys), exactly as a deployed node: it dials out, long-polls, and runs its apps warm.

For the same-run baseline the same node data directories are opened in this process and served through
``InMemoryTransport`` (no network, no persistence): the floor the channel is compared with.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import torch
from torch import nn

from common.crypto import SigningKey
from common.flower import ensure_task_identity
from common.models import build_model
from common.trust import read_signed_job, sign_job
from coordinator.federation.channel_transport import ChannelTransport
from coordinator.federation.jobs.specs import parse_spec
from coordinator.federation.memory import Endpoint, InMemoryTransport
from coordinator.store import jobs, researchers
from coordinator.store.db import write_transaction
from node.config import NodeSettings
from node.federation.apps.data import make_tabular
from node.federation.host import ClientAppHost
from node.federation.service import TABULAR_ROWS, build_host
from node.fhir.service import FhirService
from node.identity import enrol
from node.runtime import init_node, open_service
from tests.integration.test_enrolment import Coordinator, running_coordinator
from tests.researchers import STUDY, Researcher, add_researcher

# Job specs as submitted (Network.job stores them normalised and signed; the nodes decide on ``kind``).
COUNT_SPEC: Mapping[str, object] = {"kind": "count", "app": "count", "message_types": ["query"]}
FEDAVG_SPEC: Mapping[str, object] = {"kind": "fedavg_mlp", "app": "fedavg_mlp", "message_types": ["train", "evaluate"]}
PATIENTS_PER_NODE = 5
VENV_BIN = Path(sys.executable).parent
NODE_START = (str(VENV_BIN / "medfed"), "node", "start")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: the venv's bin first on PATH, no proxies, no telemetry."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(name, None)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (closed again; a tiny race that loopback benchmarks can live with)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any], *, grace_s: float = 10.0) -> None:
    """Terminate one process started here (by its own handle), killing it if it does not exit in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(grace_s)


@dataclass
class NodeSite:
    """One enrolled node: its data directory, Flower node id, and its process (if started)."""

    data_dir: Path
    flower_node_id: int
    service: FhirService
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None


@dataclass
class Network:
    """The coordinator (in this process) and its node processes."""

    coordinator: Coordinator
    nodes: list[NodeSite]
    researcher: Researcher
    _hosts: dict[int, ClientAppHost] = field(default_factory=dict)

    def transport(self) -> ChannelTransport:
        """A fresh channel transport over the coordinator's store and notifier."""
        return ChannelTransport(self.coordinator.engine, self.coordinator.app.state.notifier, offline_after_s=60)

    def job(self, spec: Mapping[str, object], seed: int = 1) -> str:
        """Create a job record signed by the network's researcher, as the REST API does on submission (nodes run
        only signed jobs, and only the rounds the signed spec names); its id."""
        normal = parse_spec(dict(spec)).model_dump(mode="json")
        signed = sign_job(SigningKey.from_pem(self.researcher.key_file.read_bytes()), normal, study=STUDY)
        with write_transaction(self.coordinator.engine) as conn:
            job = jobs.create_job(conn, kind=normal["kind"], spec=normal, submitter=self.researcher.name, seed=seed)
            researchers.keep_job_signature(
                conn,
                job_id=job.id,
                researcher=self.researcher.name,
                digest=read_signed_job(signed).digest,
                document=signed,
            )
        return job.id

    def memory_transport(self, app: str, message_types: Sequence[str]) -> InMemoryTransport:
        """The baseline: the same node data and apps, called in this process with no network."""
        allowed = frozenset(message_types)

        def endpoint(host: ClientAppHost) -> Endpoint:
            def call(payload: bytes, *, job_id: str) -> bytes:
                return host.handle(payload, job_id=job_id, app=app, allowed_message_types=allowed)

            return call

        for site in self.nodes:
            if site.flower_node_id not in self._hosts:
                host = build_host(site.service, site.flower_node_id)
                host.warm_up()
                self._hosts[site.flower_node_id] = host
        return InMemoryTransport({node_id: endpoint(host) for node_id, host in self._hosts.items()})


def _patient(i: int) -> dict[str, object]:
    return {"resourceType": "Patient", "gender": "female", "identifier": [{"system": "urn:bench", "value": str(i)}]}


@contextmanager
def medfed_network(workdir: Path, n_nodes: int, *, start_timeout_s: float = 180.0) -> Iterator[Network]:
    """A TLS coordinator with ``n_nodes`` enrolled node processes, all connected; everything stopped after."""
    ensure_task_identity()
    coordinator_dir = workdir / f"coordinator-{uuid.uuid4().hex[:8]}"
    coordinator_dir.mkdir(parents=True)
    with ExitStack() as stack:
        coordinator = stack.enter_context(
            running_coordinator(coordinator_dir, f"sqlite:///{coordinator_dir / 'coordinator.db'}")
        )
        sites: list[NodeSite] = []
        for index in range(n_nodes):
            node_dir = coordinator_dir / f"node-{index}"
            settings = NodeSettings(data_dir=node_dir)
            init_node(settings)
            service = open_service(settings)
            for i in range(PATIENTS_PER_NODE):
                service.create(_patient(i))
            identity = enrol(node_dir, coordinator.code(f"Bench site {index} {uuid.uuid4().hex[:6]}"), version="bench")
            sites.append(NodeSite(node_dir, identity.flower_node_id, service))
        network = Network(
            coordinator, sites, add_researcher(coordinator.engine, coordinator_dir, coordinator_dir / "keys")
        )
        stack.callback(_stop_nodes, sites)
        start_node_processes(sites)
        wait_online(network.transport(), sites, start_timeout_s)
        yield network
    shutil.rmtree(coordinator_dir, ignore_errors=True)


def _stop_nodes(sites: Sequence[NodeSite]) -> None:
    stop_node_processes(sites)
    for site in sites:
        site.service.engine.dispose()


class NodeProcess(Protocol):
    """A node data directory with the ``medfed node start`` process serving it, once started."""

    data_dir: Path
    process: subprocess.Popen[bytes] | None
    log: IO[bytes] | None


def start_node_processes(sites: Sequence[NodeProcess]) -> None:
    """``medfed node start`` on every site's enrolled data directory, each logging to its ``node.log``."""
    for site in sites:
        site.log = (site.data_dir / "node.log").open("wb")
        site.process = subprocess.Popen(
            [*NODE_START, "--data-dir", str(site.data_dir), "--port", str(free_port())],
            stdout=site.log,
            stderr=subprocess.STDOUT,
            env=child_env(MEDFED_NODE_LOG_LEVEL="WARNING"),
        )


def stop_node_processes(sites: Sequence[NodeProcess]) -> None:
    """Stop every site's node process and close its log (sites never started are passed over)."""
    for site in sites:
        if site.process is not None:
            stop_process(site.process)
        if site.log is not None:
            site.log.close()


def wait_online(transport: ChannelTransport, sites: Sequence[NodeProcess], timeout_s: float) -> None:
    """Return once every site's node is connected to the channel; RuntimeError if one exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while len(transport.node_ids()) < len(sites):
        for site in sites:
            if site.process is not None and site.process.poll() is not None:
                log = (site.data_dir / "node.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"node process exited with {site.process.returncode}:\n{log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(transport.node_ids())} of {len(sites)} nodes came online")
        time.sleep(0.2)


# --- statistics and tables ------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100, linear interpolation)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain Markdown table, ready to paste into the README."""
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


def machine() -> str:
    """A one-line description of this machine and its load."""
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"load average {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


# --- plain torch: the local compute of one FedAvg round, for the overhead baseline ----------------


def node_features(seed: int, flower_node_id: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The rows the node's ``fedavg_mlp`` app trains on (the same derivation as ``build_host``)."""
    return make_tabular(TABULAR_ROWS, seed=(seed * 1_000_003 + flower_node_id) % 2**32)


def local_round(
    datasets: Sequence[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
    state: Mapping[str, torch.Tensor],
    *,
    hidden: tuple[int, ...] = (64, 64),
    lr: float = 0.05,
    batch_size: int = 32,
    epochs: int = 1,
    seed: int = 0,
) -> float:
    """Train (then evaluate) one local model per dataset, one after another, as plain torch; seconds taken."""
    started = time.perf_counter()
    for x_all, y_all in datasets:
        cut = x_all.shape[0] - max(1, round(x_all.shape[0] * 0.2))
        x, y = torch.from_numpy(x_all[:cut]), torch.from_numpy(y_all[:cut])
        x_test, y_test = torch.from_numpy(x_all[cut:]), torch.from_numpy(y_all[cut:])
        model = build_model("mlp", in_features=x.shape[1], hidden=hidden, seed=0)
        model.load_state_dict(state)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(x.shape[0], generator=generator)
            for start in range(0, x.shape[0], batch_size):
                batch = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = nn.functional.binary_cross_entropy_with_logits(model(x[batch]).squeeze(1), y[batch])
                torch.autograd.backward(loss)
                optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_test).squeeze(1)
            float(nn.functional.binary_cross_entropy_with_logits(logits, y_test).item())
    return time.perf_counter() - started
