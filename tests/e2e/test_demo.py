"""`medfed demo` sets up a node with generated patients and serves its FHIR API."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.e2e.conftest import _free_port, _medfed_command, _node_env, _stop, _wait_until_healthy

PATIENTS = 12


def test_demo_serves_generated_patients(tmp_path: Path) -> None:
    """The demo prints its FHIR URL and a clinician token; the API then holds exactly the generated patients."""
    port = _free_port()
    stderr_path = tmp_path / "demo.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                *_medfed_command(),
                "demo",
                "--dir",
                str(tmp_path / "demo"),
                "--patients",
                str(PATIENTS),
                "--port",
                str(port),
            ],
            env=_node_env(None),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            assert process.stdout is not None
            lines: list[str] = []
            while not any(line.startswith("token") for line in lines):
                line = process.stdout.readline().decode()
                assert line, f"demo ended early: {lines} {stderr_path.read_text(errors='replace')[-2000:]}"
                lines.append(line.strip())
            fhir = next(line for line in lines if line.startswith("FHIR API:")).split(": ", 1)[1]
            token = next(line for line in lines if line.startswith("token")).rsplit(" ", 1)[1]
            assert fhir == f"http://127.0.0.1:{port}/fhir"
            _wait_until_healthy(process, f"http://127.0.0.1:{port}", stderr_path)
            headers = {"Authorization": f"Bearer {token}"}
            patients = httpx.get(f"{fhir}/Patient", params={"_count": "0"}, headers=headers).json()
            assert patients["total"] == PATIENTS
            observations = httpx.get(f"{fhir}/Observation", params={"_count": "0"}, headers=headers).json()
            assert observations["total"] > PATIENTS
            refused = httpx.post(f"{fhir}/Patient", json={"resourceType": "Patient"}, headers=headers)
            assert refused.status_code == 403  # the demo's token is read-only
        finally:
            _stop(process)
            if process.stdout is not None:
                process.stdout.close()
