"""`medfed demo` runs a coordinator and three node processes, a count, a histogram and FedAvg, then stops."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.e2e.conftest import _medfed_command, _node_env

PATIENTS = 8


def _demo(root: Path) -> tuple[int, str, str]:
    result = subprocess.run(
        [*_medfed_command(), "demo", "--dir", str(root), "--patients", str(PATIENTS), "--rounds", "1"],
        env=_node_env(None),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_demo_runs_its_jobs_and_stops_cleanly(tmp_path: Path) -> None:
    """The demo counts every node's patients, prints an HbA1c histogram released under disclosure
    control, trains FedAvg, prints the console URL, and exits 0. Run again on the same directory, it reuses
    the enrolled nodes (which know their coordinator by the URL of the first run) and does it all again."""
    returncode, out, err = _demo(tmp_path / "demo")
    assert returncode == 0, out + err[-3000:]
    assert f"patients across the network: {3 * PATIENTS}" in out
    assert len(re.findall(r"HbA1c +\d+\.\d+- *\d+\.\d+ %: (\d+|suppressed)", out)) == 8
    assert "released by each node under its disclosure rules (suppression+cell-key)" in out
    assert re.search(r"after 1 rounds: accuracy 0\.\d+", out)
    assert re.search(r"console: https://127\.0\.0\.1:\d+/console", out)
    assert out.rstrip().endswith("stopping ...")

    returncode, again, err = _demo(tmp_path / "demo")
    assert returncode == 0, again + err[-3000:]
    assert f"patients across the network: {3 * PATIENTS}" in again
    assert re.search(r"after 1 rounds: accuracy 0\.\d+", again)
