"""The coordinator console in Debian's headless Chromium, driven by Playwright.

The coordinator app (with the console) is served by uvicorn on 127.0.0.1 in a background thread,
over plain HTTP on loopback (TLS matters for the node channel, not for this console-only test).
The test writes nodes, jobs and rounds straight into the store and waits, event-driven, for the
open page to show them: the page must change without a reload. Without ``/usr/bin/chromium`` the
test skips; with ``MEDFED_REQUIRE_BROWSER=1`` it fails instead.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn

from coordinator.store.db import make_engine
from coordinator.store.jobs import JobStatus, RoundStatus, create_job, finish_round, set_job_status, start_round
from coordinator.store.migrate import upgrade
from coordinator.store.nodes import record_heartbeat, register_node
from tests.integration.coordinator.conftest import make_coordinator_client, new_public_key
from tests.integration.test_console import EVIL_NAME, include_console, token_of

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
START_TIMEOUT_S = 30.0
UPDATE_TIMEOUT_MS = 10_000  # the page polls every second; this is how long a change may take to show


def _require_browser() -> None:
    """Skip without Chromium or Playwright; fail instead when ``MEDFED_REQUIRE_BROWSER=1``."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} is missing (apt-get install chromium; scripts/setup.sh does)")
    try:
        import playwright.sync_api  # noqa: F401  (a test extra: checked, not assumed)
    except ImportError:
        missing.append("playwright is not installed (pip install -e '.[test]')")
    if missing:
        reason = "; ".join(missing)
        if os.environ.get("MEDFED_REQUIRE_BROWSER") == "1":
            pytest.fail(f"a browser is required (MEDFED_REQUIRE_BROWSER=1) but {reason}")
        pytest.skip(f"{reason} (set MEDFED_REQUIRE_BROWSER=1 to make this a failure)")


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextmanager
def serve(asgi_app: Any) -> Iterator[str]:
    """Serve ``asgi_app`` over HTTP on 127.0.0.1 in a background thread; yields its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    config = uvicorn.Config(asgi_app, log_config=None, access_log=False, ws="none", lifespan="on")
    server = _Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[listener])), daemon=True)
    thread.start()
    try:
        if not server.ready.wait(START_TIMEOUT_S) or not server.started:
            pytest.fail("the console test server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
        listener.close()


@dataclass
class Served:
    """A served coordinator with the console: its URL, its database and an admin token."""

    url: str
    engine: sa.Engine
    admin_token: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The coordinator app with the console on SQLite, served on loopback."""
    _require_browser()
    url = f"sqlite:///{tmp_path / 'coordinator.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    made = make_coordinator_client(url, tmp_path)
    app = made.client.app
    include_console(app)  # type: ignore[arg-type]
    with serve(app) as base_url:
        yield Served(url=base_url, engine=made.engine, admin_token=token_of(made.admin))
    made.engine.dispose()


def test_the_console_logs_in_and_updates_nodes_jobs_and_rounds_live_without_reloading(served: Served) -> None:
    """Logged in, the nodes, jobs and job pages show store changes within seconds, with no reload and no CSP error."""
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: problems.append(str(error)))

            page.goto(served.url + "/console/nodes")
            expect(page).to_have_url(served.url + "/console/login")
            page.fill("#token", served.admin_token)
            page.click("button[type=submit]")
            expect(page).to_have_url(served.url + "/console/nodes")
            expect(page.locator("table#nodes")).to_be_visible()
            expect(page.locator("table#nodes tbody tr")).to_have_count(0)
            cookie = next(c for c in page.context.cookies() if c["name"] == "medfed_console")
            assert cookie["httpOnly"]
            assert cookie["sameSite"] == "Strict"
            assert cookie["value"] != served.admin_token
            page.evaluate("window.medfedTestMarker = 'same page'")

            node = register_node(served.engine, name=EVIL_NAME, public_key=new_public_key())
            record_heartbeat(served.engine, node_id=node.id, version="0.1.0", clock_skew_ms=31_000)
            row = page.locator(f'table#nodes tr[data-node-id="{node.id}"]')
            expect(row.locator("td").nth(0)).to_have_text(EVIL_NAME, timeout=UPDATE_TIMEOUT_MS)
            expect(row.locator("td").nth(2)).to_have_text("online")
            expect(row.locator("td.skew-flagged")).to_have_count(1)
            assert page.evaluate("window.medfedTestMarker") == "same page"

            page.click("header nav a[href='/console/jobs']")
            expect(page).to_have_url(served.url + "/console/jobs")
            page.evaluate("window.medfedTestMarker = 'jobs page'")
            job = create_job(served.engine, kind="count", spec={}, submitter="tester", seed=7, node_ids=[node.id])
            link = page.locator(f'table#jobs tr[data-job-id="{job.id}"] a')
            expect(link).to_have_text(job.id, timeout=UPDATE_TIMEOUT_MS)
            assert page.evaluate("window.medfedTestMarker") == "jobs page"

            link.click()
            expect(page).to_have_url(re.compile(re.escape(f"/console/jobs/{job.id}") + "$"))
            page.evaluate("window.medfedTestMarker = 'job page'")
            set_job_status(served.engine, job_id=job.id, status=JobStatus.RUNNING)
            expect(page.locator("table#job td.status-running")).to_have_count(1, timeout=UPDATE_TIMEOUT_MS)
            start_round(served.engine, job_id=job.id, round=1)
            cell = page.locator('table#rounds tr[data-round="1"] td').nth(3)
            expect(cell.locator(".state")).to_have_text("waiting", timeout=UPDATE_TIMEOUT_MS)
            finish_round(
                served.engine,
                job_id=job.id,
                round=1,
                status=RoundStatus.COMPLETED,
                replies=1,
                per_node={node.id: {"count": 42}},
            )
            expect(cell.locator(".state")).to_have_text("replied", timeout=UPDATE_TIMEOUT_MS)
            expect(cell.locator(".detail")).to_have_text("count=42")
            assert page.evaluate("window.medfedTestMarker") == "job page"

            page.click("form.logout button")
            expect(page).to_have_url(served.url + "/console/login")
            page.goto(served.url + "/console/nodes")
            expect(page).to_have_url(served.url + "/console/login")
        finally:
            browser.close()
    assert problems == []
