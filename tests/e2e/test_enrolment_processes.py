"""Enrolment with real ``medfed`` processes: a TLS coordinator, a one-time code, a node that enrols with it.

``medfed coordinator init`` / ``start`` (HTTPS, ``--no-advertise``) / ``enrol-code`` / ``token create``
and ``medfed node init`` / ``enrol`` run as subprocesses on loopback; the coordinator is ready when
``/healthz`` answers 200 over TLS verified against its CA, and is stopped by its own handle.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from common.crypto import certificate_fingerprint, client_ssl_context
from tests.e2e.conftest import (
    COMMAND_TIMEOUT_S,
    POLL_INTERVAL_S,
    STARTUP_DEADLINE_S,
    _free_port,
    _medfed_command,
    _run_all,
    _stop,
    _tail,
)
from tests.e2e.processes import medfed_env


def _medfed(*args: str) -> subprocess.CompletedProcess[str]:
    """Run one ``medfed`` command to completion; fail with its stderr if it does not exit 0."""
    result = subprocess.run(
        [*_medfed_command(), *args],
        env=medfed_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"medfed {' '.join(args[:2])} exited with {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def _wait_until_healthy_over_tls(
    process: subprocess.Popen[bytes], base_url: str, ca_pem: bytes, stderr_path: Path
) -> None:
    """Poll /healthz over TLS pinned to ``ca_pem`` until 200; fail if the process exits or the deadline passes."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    with httpx.Client(base_url=base_url, verify=client_ssl_context(ca_pem), timeout=2.0, trust_env=False) as client:
        while True:
            code = process.poll()
            if code is not None:
                pytest.fail(f"medfed coordinator start exited with {code} before it was ready:\n{_tail(stderr_path)}")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"the coordinator was not healthy after {STARTUP_DEADLINE_S:.0f}s:\n{_tail(stderr_path)}")
            time.sleep(POLL_INTERVAL_S)  # polling interval of a readiness probe, not synchronisation


def test_a_node_process_enrols_with_a_coordinator_process(tmp_path: Path) -> None:
    """After init, start, enrol-code and node enrol, the coordinator's /api/nodes lists the node as enrolled."""
    coordinator_dir, node_dir = tmp_path / "coordinator", tmp_path / "node"
    port = _free_port()
    base_url = f"https://127.0.0.1:{port}"
    _medfed("coordinator", "init", "--data-dir", str(coordinator_dir), "--ip", "127.0.0.1")
    ca_pem = (coordinator_dir / "tls" / "ca.pem").read_bytes()

    stderr_path = tmp_path / "coordinator.stderr.log"
    with (tmp_path / "coordinator.stdout.log").open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [
                *_medfed_command(),
                "coordinator",
                "start",
                "--data-dir",
                str(coordinator_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-advertise",
            ],
            env=medfed_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:
        # While the coordinator starts: the code and the token (both need only its database) and the node's init.
        code, admin, _ = _run_all(
            [
                ["coordinator", "enrol-code", "--data-dir", str(coordinator_dir), "--node", "E2E Site"],
                ["coordinator", "token", "create", "--data-dir", str(coordinator_dir), "--role", "admin"],
                ["node", "init", "--data-dir", str(node_dir)],
            ],
            medfed_env(),
        )
        _wait_until_healthy_over_tls(process, base_url, ca_pem, stderr_path)

        enrolled = _medfed("node", "enrol", code.strip(), "--coordinator", base_url, "--data-dir", str(node_dir))
        assert "e2e-site" in enrolled.stderr
        record = orjson.loads((node_dir / "identity" / "coordinator.json").read_bytes())
        assert record["node_id"] == "e2e-site"
        assert record["ca_fingerprint"] == certificate_fingerprint(ca_pem)
        assert record["coordinator_url"] == base_url

        with httpx.Client(base_url=base_url, verify=client_ssl_context(ca_pem), trust_env=False) as client:
            listed = client.get("/api/nodes", headers={"Authorization": f"Bearer {admin.strip()}"})
        assert listed.status_code == 200
        assert [(n["id"], n["name"], n["status"]) for n in listed.json()["nodes"]] == [
            ("e2e-site", "E2E Site", "enrolled")
        ]
    finally:
        _stop(process)
    assert process.returncode is not None
