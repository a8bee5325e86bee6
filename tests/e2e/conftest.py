"""A real ``medfed node`` process on a free loopback port, over SQLite and over PostgreSQL.

Each test module gets one node per database kind (module scope keeps the number of processes small):
``medfed node init`` and ``medfed node token create`` run as subprocesses, then ``medfed node start``
runs until the module is done. Readiness is ``GET /healthz`` answering 200 before a deadline; the
process is stopped by its own handle (terminate, then kill if it does not exit).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import temporary_postgres_database

STARTUP_DEADLINE_S = 60.0
COMMAND_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.05
STDERR_TAIL_CHARS = 4000
MRN_SYSTEM = "urn:medfed-e2e:mrn"


@dataclass(frozen=True)
class RunningNode:
    """A started node: its FHIR base URL and the tokens of an admin and of a clinician."""

    database: str
    base_url: str
    fhir_base: str
    admin_token: str
    clinician_token: str

    def admin_headers(self) -> dict[str, str]:
        """The Authorization header of the admin token."""
        return {"Authorization": f"Bearer {self.admin_token}"}


def _medfed_command() -> list[str]:
    """The ``medfed`` console script of the interpreter running the tests (the venv's)."""
    beside = Path(sys.executable).parent / "medfed"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("medfed")
    if found is None:
        pytest.fail("the medfed console script is not installed (pip install -e .)")
    return [found]


def _node_env(database_url: str | None) -> dict[str, str]:
    """The test runner's environment without any MEDFED_NODE_* setting, plus the database URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFED_NODE_")}
    if database_url is not None:
        env["MEDFED_NODE_DATABASE_URL"] = database_url
    return env


def _run_all(commands: list[list[str]], env: dict[str, str]) -> list[str]:
    """Run ``medfed`` commands side by side to completion; their stdouts, or a failure showing stderr."""
    processes = [
        subprocess.Popen(
            [*_medfed_command(), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    outputs: list[str] = []
    failures: list[str] = []
    for args, process in zip(commands, processes, strict=True):
        try:
            stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        if process.returncode != 0:
            failures.append(
                f"medfed {' '.join(args[:3])} exited with {process.returncode}:\n{stderr[-STDERR_TAIL_CHARS:]}"
            )
        outputs.append(stdout)
    if failures:
        pytest.fail("\n".join(failures))
    return outputs


def _free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (released again for the node to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-STDERR_TAIL_CHARS:]


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, stderr_path: Path) -> None:
    """Poll /healthz until 200; fail with the stderr tail if the process exits or the deadline passes."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while True:
            code = process.poll()
            if code is not None:
                pytest.fail(f"medfed node start exited with {code} before it was ready:\n{_tail(stderr_path)}")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"medfed node start was not healthy after {STARTUP_DEADLINE_S:.0f}s:\n{_tail(stderr_path)}")
            time.sleep(POLL_INTERVAL_S)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the node by its own handle: SIGTERM, then SIGKILL if it does not exit in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def _module_postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test module, dropped afterwards."""
    with temporary_postgres_database("medfed_e2e") as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def running_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    """A ``medfed node start`` process with an admin and a clinician token, on SQLite and on PostgreSQL."""
    database_url: str | None = None
    if request.param == "postgres":
        database_url = request.getfixturevalue("_module_postgres_url")
    data_dir = tmp_path_factory.mktemp(f"node-{request.param}")
    env = _node_env(database_url)
    where = ["--data-dir", str(data_dir)]
    _run_all([["node", "init", *where]], env)

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    stdout_path = data_dir.parent / f"{data_dir.name}.stdout.log"
    stderr_path = data_dir.parent / f"{data_dir.name}.stderr.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [*_medfed_command(), "node", "start", *where, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        # The tokens are created while the node starts (both only need the initialised database).
        admin, clinician = (
            printed.strip()
            for printed in _run_all(
                [
                    ["node", "token", "create", *where, "--role", "admin", "--label", "e2e admin"],
                    ["node", "token", "create", *where, "--role", "clinician", "--label", "e2e clinician"],
                ],
                env,
            )
        )
        _wait_until_healthy(process, base_url, stderr_path)
        yield RunningNode(
            database=request.param,
            base_url=base_url,
            fhir_base=f"{base_url}/fhir",
            admin_token=admin,
            clinician_token=clinician,
        )
    finally:
        _stop(process)


def unique(prefix: str) -> str:
    """A name no other test on the same node uses (the node is shared by a module's tests)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def patient_json(family: str, mrn: str | None = None) -> dict[str, Any]:
    """A valid Patient; ``mrn`` becomes an identifier in :data:`MRN_SYSTEM`."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": ["Anna"]}],
        "gender": "female",
        "birthDate": "1980-05-17",
    }
    if mrn is not None:
        resource["identifier"] = [{"system": MRN_SYSTEM, "value": mrn}]
    return resource


def observation_json(subject_reference: str, value: float = 13.2) -> dict[str, Any]:
    """A valid haemoglobin Observation about ``subject_reference``."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": subject_reference},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {"value": value, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"},
    }


def transaction_json(family: str, observations: int) -> dict[str, Any]:
    """A transaction Bundle: one Patient and ``observations`` Observations that refer to it by urn:uuid."""
    patient_urn = f"urn:uuid:{uuid.uuid4()}"
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": patient_urn,
            "resource": patient_json(family),
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    entries += [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": observation_json(patient_urn, value=10.0 + i),
            "request": {"method": "POST", "url": "Observation"},
        }
        for i in range(observations)
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def post_with_httpx(node: RunningNode, resource: dict[str, Any], content_type: str) -> httpx.Response:
    """POST a resource with a media type of our choosing (the FHIR clients pick their own)."""
    return httpx.post(
        f"{node.fhir_base}/{resource['resourceType']}",
        content=json.dumps(resource).encode(),
        headers={**node.admin_headers(), "Content-Type": content_type, "Accept": "application/fhir+json"},
    )
