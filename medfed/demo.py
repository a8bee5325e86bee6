"""``medfed demo``: a coordinator and three hospital nodes on this machine, running real jobs.

Each node is its own process with its own SQLite file and its own generated patients (a different
site per node); the coordinator is its own process serving HTTPS from its private CA. The demo enrols
the nodes (pinned to the coordinator's CA), waits until they are online over the channel, runs a
federated count, a histogram of HbA1c over each node's lab view (released under the node's disclosure
control) and a FedAvg job through the coordinator's API, prints the results and the console
URL, and then shuts everything down — or, with ``--keep-running``, leaves it up until Ctrl-C.
Every process is stopped by its own handle.

The jobs are signed, as every job is (``docs/trust.md``): the demo registers a researcher (its key and
token under ``<dir>/researcher``, reused on the next run) in study ``demo``, and submits through the SDK,
which signs with that key; each node verifies the signature against the network-admin key it pinned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from common.crypto import SigningKey, client_ssl_context, save_private_key
from common.errors import ConfigError, ErrorCode, InternalError
from coordinator.config import CoordinatorSettings
from coordinator.identity import CA_CERT_FILE, TLS_DIR, CoordinatorIdentity, load_network_admin_key
from coordinator.researchers import add_researcher
from coordinator.runtime import init_coordinator
from coordinator.store.enrolment import create_enrolment_code
from coordinator.store.tokens import Role, create_token
from medfed.sdk import Federation
from node.config import NodeSettings
from node.fhir.ingest import ingest_paths
from node.generator import generate
from node.identity import NodeIdentity, enrol
from node.runtime import init_node, open_service

__all__ = ["run_demo"]

SITES = ("St Mary", "Riverside", "Northfield")
READY_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 600.0
STUDY = "demo"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _coordinator_port(root: Path) -> int:
    """A free port on the first run; on a later one, the port the enrolled nodes pinned in their identity.

    The nodes keep the coordinator's URL from their enrolment, so a reused demo's coordinator must come back
    where they know it. ConfigError when that port is taken now.
    """
    for index in range(len(SITES)):
        identity = NodeIdentity.load(_node_dir(root, index))
        if identity is None:
            continue
        port = urlsplit(identity.coordinator_url).port
        if port is None:
            break
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(
                detail=f"port {port}, where this demo's nodes know their coordinator, is in use; "
                f"free it, or delete {root} to start a new demo"
            ) from None
        return port
    return _free_port()


def _node_dir(root: Path, index: int) -> Path:
    return root / f"node-{index + 1}"


@dataclass
class _Processes:
    """Child processes, stopped by their own handles in reverse order."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDFED_NODE_", "MEDFED_COORDINATOR_"))}
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
                [sys.executable, "-m", "medfed", *args], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env
            )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for(check: Callable[[], bool], what: str, processes: _Processes, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes.started:
            if process.poll() is not None:
                raise InternalError(ErrorCode.INTERNAL, detail=f"a demo process exited early while waiting for {what}")
        if check():
            return
        time.sleep(0.2)  # polling a child process's readiness; there is no event to wait on
    raise InternalError(ErrorCode.INTERNAL, detail=f"timed out waiting for {what}")


def _node(root: Path, index: int, site: str, patients: int, seed: int, say: Callable[[str], None]) -> NodeSettings:
    settings = NodeSettings(data_dir=_node_dir(root, index), port=_free_port())
    fresh = not (settings.data_dir / "node.db").exists()
    init_node(settings)
    if fresh:
        out = root / f"generated-{index + 1}"
        generated = generate(patients=patients, seed=seed, out=out, fmt="ndjson", site=f"site-{index + 1}")
        summary = ingest_paths(open_service(settings), [out], max_bundle_entries=settings.max_bundle_entries)
        say(f"  {site}: {generated.patients} patients, {sum(summary.stored.values())} resources loaded")
    return settings


def _client(url: str, identity: CoordinatorIdentity, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=url,
        verify=client_ssl_context(identity.ca_pem),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        trust_env=False,
    )


HBA1C_HISTOGRAM: dict[str, Any] = {
    "kind": "analysis",
    "analysis": "histogram",
    "params": {"column": "value", "lower": 4.0, "upper": 12.0, "bins": 8},
    "source": {"view": "lab_observations"},
    "cohort": {"op": "in", "column": "loinc_code", "values": ["4548-4"]},  # HbA1c (%)
}


def _histogram_lines(job: dict[str, Any]) -> list[str]:
    """The histogram as printed lines: each bin's released count, or why it was withheld."""
    result = (job.get("result") or {}).get("result") or {}
    edges, counts = result.get("edges") or [], result.get("counts") or []
    lines = []
    for low, high, count in zip(edges, edges[1:], counts, strict=False):
        if isinstance(count, dict):  # a cell released under disclosure control
            count = "suppressed (too few patients)" if count.get("suppressed") else count.get("value")
        lines.append(f"  HbA1c {low:4.1f}-{high:4.1f} %: {count}")
    disclosure = {
        str((node.get("disclosure") or {}).get("method"))
        for node in ((job.get("result") or {}).get("nodes") or {}).values()
        if isinstance(node, dict)
    }
    if disclosure:
        lines.append(f"  released by each node under its disclosure rules ({', '.join(sorted(disclosure))})")
    return lines


def _researcher(root: Path, engine: Any, coordinator_dir: Path) -> tuple[Path, str]:
    """The demo researcher's key file and token: registered on the first run, read from ``root/researcher`` after."""
    directory = root / "researcher"
    key_file, token_file = directory / "researcher.key", directory / "token"
    if key_file.is_file() and token_file.is_file():
        return key_file, token_file.read_text(encoding="ascii").strip()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = SigningKey.generate()
    added = add_researcher(
        engine,
        load_network_admin_key(coordinator_dir),
        name=f"demo-researcher-{os.urandom(3).hex()}",  # a fresh name if an earlier run lost its files
        public_key=key.public_key(),
        studies=[STUDY],
    )
    key_file.unlink(missing_ok=True)
    save_private_key(key_file, key.to_pem())
    token_file.unlink(missing_ok=True)
    save_private_key(token_file, added.token.encode("ascii"))  # written 0600, like a key
    return key_file, added.token


def _run_job(researcher: Federation, spec: dict[str, Any], seed: int, say: Callable[[str], None]) -> dict[str, Any]:
    job_id = researcher.submit(spec, seed=seed)["id"]  # signed with the researcher's key
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        status: dict[str, Any] = researcher.job(job_id)
        if status["status"] in ("succeeded", "failed", "cancelled"):
            if status["status"] != "succeeded":
                say(f"  job {spec['kind']} {status['status']}: {status.get('error')}")
                return status
            return researcher.results(job_id)
        time.sleep(0.5)  # polling the API for a job's end, as `medfed job watch` does
    raise InternalError(ErrorCode.INTERNAL, detail="a demo job did not finish in time")


def run_demo(
    *,
    root: Path,
    patients: int,
    seed: int,
    rounds: int,
    keep_running: bool,
    say: Callable[[str], None],
) -> None:
    """Run the demo network under ``root`` (reused when it exists)."""
    root.mkdir(parents=True, exist_ok=True)
    processes = _Processes()
    stop = threading.Event()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(processes.stop_all)
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        cleanup.callback(signal.signal, signal.SIGTERM, previous)

        port = _coordinator_port(root)
        coordinator = CoordinatorSettings(data_dir=root / "coordinator", port=port)
        engine, _ = init_coordinator(coordinator)
        identity = CoordinatorIdentity.load(coordinator.data_dir)
        url = f"https://127.0.0.1:{port}"
        _, admin_token = create_token(engine, role=Role.ADMIN, label="demo")
        key_file, researcher_token = _researcher(root, engine, coordinator.data_dir)
        say(f"coordinator: {url} (private CA {identity.ca_fingerprint[:23]}...)")
        processes.start(
            ["coordinator", "start", "--data-dir", str(coordinator.data_dir), "--port", str(port), "--no-advertise"],
            root / "coordinator.log",
        )
        api = cleanup.enter_context(_client(url, identity, admin_token))
        researcher = cleanup.enter_context(
            Federation(
                url,
                token=researcher_token,
                ca_file=coordinator.data_dir / TLS_DIR / CA_CERT_FILE,
                researcher_key=key_file,
                study=STUDY,
            )
        )

        def coordinator_up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return api.get("/healthz").status_code == 200
            return False

        _wait_for(coordinator_up, "the coordinator", processes)

        say("nodes:")
        for index, site in enumerate(SITES):
            settings = _node(root, index, site, patients, seed + index, say)
            if NodeIdentity.load(settings.data_dir) is None:
                code = create_enrolment_code(
                    engine,
                    node_name=site,
                    ttl_s=600,
                    fingerprint=identity.ca_fingerprint,
                    public_url=url,
                )
                enrol(settings.data_dir, code.code, version="demo")
            processes.start(
                ["node", "start", "--data-dir", str(settings.data_dir), "--port", str(settings.port)],
                root / f"node-{index + 1}.log",
            )
            say(f"  {site}: FHIR API http://127.0.0.1:{settings.port}/fhir")
        engine.dispose()

        def nodes_online() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                listed = api.get("/api/nodes").json()["nodes"]
                return sum(1 for n in listed if n.get("online")) >= len(SITES)
            return False

        _wait_for(nodes_online, "the nodes to come online", processes)
        say("all nodes online; running a federated count ...")
        count = _run_job(researcher, {"kind": "count"}, seed, say)
        say(f"  patients across the network: {(count.get('result') or {}).get('total')}")
        say("running a federated histogram of HbA1c from each node's lab_observations view ...")
        histogram = _run_job(researcher, HBA1C_HISTOGRAM, seed, say)
        for line in _histogram_lines(histogram):
            say(line)
        say(f"running FedAvg of an MLP, {rounds} rounds ...")
        fedavg = _run_job(researcher, {"kind": "fedavg_mlp", "rounds": rounds, "quorum": len(SITES)}, seed, say)
        result = fedavg.get("result") or {}
        metrics = result.get("evaluate_metrics", {})
        if metrics:
            say(
                f"  after {result.get('rounds')} rounds: accuracy {metrics.get('eval_acc', float('nan')):.3f}, "
                f"loss {metrics.get('eval_loss', float('nan')):.3f} (weighted over the nodes' test splits)"
            )
        say(f"console: {url}/console  (admin token: {admin_token})")
        if keep_running:
            say("running; stop with Ctrl-C")
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
        say("stopping ...")
