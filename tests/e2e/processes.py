"""What the multi-process end-to-end tests share: ``medfed`` processes started, polled and stopped by handle.

A test network (a coordinator and its nodes, each a ``medfed ... start`` process) mixes in
:class:`MedfedProcesses` for the mechanics every such test needs the same way: spawn a service with its
output in a log file, run a command to completion with its output kept (leak scans read it), poll a
condition against a deadline while watching that no service died, and stop every process by its own
handle. The free functions below answer the questions those tests poll: is ``/healthz`` up, which nodes
does the coordinator list online, how many index records does each node have.
"""

from __future__ import annotations

import functools
import os
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
import sqlalchemy as sa

from common.crypto import client_ssl_context
from coordinator.config import CoordinatorSettings
from coordinator.identity import CoordinatorIdentity
from tests.e2e.conftest import STDERR_TAIL_CHARS, _medfed_command, _stop

READY_DEADLINE_S = 240.0  # process start-up (torch import) on a loaded 2-core machine
POLL_S = 0.2
COMMAND_TIMEOUT_S = 180.0


def medfed_env() -> dict[str, str]:
    """The runner's environment without MEDFED_* settings or proxies (loopback is dialled directly)."""
    dropped = {"https_proxy", "http_proxy", "all_proxy"}
    return {k: v for k, v in os.environ.items() if not k.startswith("MEDFED_") and k.lower() not in dropped}


class MedfedProcesses:
    """Mixed into a test network (a dataclass) that has these fields and says which logs are its services'."""

    root: Path
    outputs: list[Path]  # every command's stdout and stderr, in order
    processes: list[subprocess.Popen[bytes]]  # every service started, in order
    ready_deadline_s: ClassVar[float] = READY_DEADLINE_S  # how long :meth:`wait_for` waits unless told

    def log_paths(self) -> list[Path]:
        """The services' log files, for failure messages."""
        raise NotImplementedError

    def spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        """Start ``medfed *args`` with stdout and stderr appended to ``log``; stopped by :meth:`stop_all`."""
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*_medfed_command(), *args], env=medfed_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        self.processes.append(process)
        return process

    def spawn_coordinator(self, settings: CoordinatorSettings, url: str) -> subprocess.Popen[bytes]:
        """``medfed coordinator start`` (not advertised on the LAN) on ``settings``' data dir and port, logged to
        ``coordinator.log``; returned once ``url``'s /healthz answers over TLS pinned to its CA."""
        process = self.spawn(
            [
                "coordinator",
                "start",
                "--data-dir",
                str(settings.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.port),
                "--no-advertise",
            ],
            self.root / "coordinator.log",
        )
        verify = client_ssl_context(CoordinatorIdentity.load(settings.data_dir).ca_pem)
        self.wait_for(functools.partial(healthy, url, verify), "the coordinator to answer /healthz", watch=[process])
        return process

    def command(self, args: list[str], name: str, *, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
        """Run a ``medfed`` command to completion; its stdout (kept, with its stderr, in :attr:`outputs`)."""
        stdout_path, stderr_path = self.root / f"{name}.stdout", self.root / f"{name}.stderr"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            done = subprocess.run(
                [*_medfed_command(), *args],
                env=medfed_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=timeout_s,
                check=False,  # a failure is reported below, with its stderr
            )
        self.outputs += [stdout_path, stderr_path]
        if done.returncode != 0:
            pytest.fail(f"medfed {' '.join(args[:3])} exited {done.returncode}:\n{stderr_path.read_text()[-2000:]}")
        return stdout_path.read_text()

    def logs(self) -> str:
        """The tails of every service's log, for failure messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-STDERR_TAIL_CHARS:]}"
            for path in self.log_paths()
            if path.exists()
        )

    def wait_for(
        self,
        check: Callable[[], bool],
        what: str,
        *,
        deadline_s: float | None = None,
        watch: list[subprocess.Popen[bytes]] | None = None,
        interval_s: float = POLL_S,
    ) -> None:
        """Poll ``check`` until True; fail if a watched process (by default: every service) exits or the
        deadline passes."""
        limit_s = self.ready_deadline_s if deadline_s is None else deadline_s
        deadline = time.monotonic() + limit_s
        while True:
            for process in self.processes if watch is None else watch:
                if process.poll() is not None:
                    pytest.fail(f"a process exited ({process.returncode}) while waiting for {what}:\n{self.logs()}")
            if check():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {limit_s:.0f}s waiting for {what}:\n{self.logs()}")
            time.sleep(interval_s)  # the polling interval of a readiness probe, not synchronisation

    def stop_all(self) -> None:
        """Every service, by its own handle: SIGTERM to all, then SIGKILL to any still running."""
        running = [process for process in reversed(self.processes) if process.poll() is None]
        for process in running:  # all at once: a node's long-poll ends as the coordinator goes
            process.terminate()
        for process in running:
            _stop(process)


def healthy(url: str, verify: ssl.SSLContext | bool = True) -> bool:
    """Whether ``{url}/healthz`` answers 200 now."""
    try:
        return httpx.get(f"{url}/healthz", verify=verify, timeout=2.0, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def online_nodes(api: Callable[[], httpx.Client]) -> set[str]:
    """Ids of the nodes the coordinator lists as online (none while it does not answer)."""
    try:
        with api() as client:
            listed = client.get("/api/nodes")
    except httpx.TransportError:
        return set()
    if listed.status_code != 200:
        return set()
    return {n["id"] for n in listed.json()["nodes"] if n.get("online")}


def index_records(coordinator: CoordinatorSettings) -> dict[str, int]:
    """How many patient index records the coordinator's database holds per node (none before it exists)."""
    engine = sa.create_engine(coordinator.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT node_id, count(*) FROM index_record GROUP BY node_id")).all()
    except sa.exc.OperationalError:
        return {}
    finally:
        engine.dispose()
    return {row[0]: int(row[1]) for row in rows}
