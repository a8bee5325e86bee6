"""Rate limits at the coordinator: refused bearer tokens and console logins, per client address."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from common.logs import JsonFormatter
from tests.integration.conftest import token_lookups
from tests.integration.coordinator.conftest import CoordinatorClient, make_coordinator_client

BURST = 4
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def coordinator(coordinator_database_url: str, tmp_path: Path) -> Iterator[CoordinatorClient]:
    """A coordinator app whose addresses may fail authentication 4 times (refilled very slowly)."""
    made = make_coordinator_client(
        coordinator_database_url, tmp_path, auth_failure_burst=BURST, auth_failure_refill_per_s=0.001
    )
    with made.client:
        yield made
    made.engine.dispose()


def _login(coordinator: CoordinatorClient, token: str) -> Any:
    return coordinator.client.post("/console/login", data={"token": token}, headers=ORIGIN, follow_redirects=False)


def test_refused_tokens_past_the_budget_get_429_and_a_token_in_use_keeps_working(
    coordinator: CoordinatorClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Four unknown tokens: 401; the fifth: 429 with no lookup. The observer's token, in use before, still works."""
    caplog.set_level(logging.DEBUG)
    assert coordinator.client.get("/api/jobs", headers=coordinator.observer).status_code == 200
    guesses = [f"mfc_guess{i:02d}" + "y" * 38 for i in range(BURST + 1)]
    for guess in guesses[:BURST]:
        assert coordinator.client.get("/api/jobs", headers={"Authorization": f"Bearer {guess}"}).status_code == 401
    lookups = token_lookups(coordinator.engine)
    refused = coordinator.client.get("/api/jobs", headers={"Authorization": f"Bearer {guesses[BURST]}"})
    assert refused.status_code == 429
    assert orjson.loads(refused.content) == {
        "error": {"code": "rate_limited", "message": "Too many requests; slow down and try again shortly."}
    }
    assert lookups[0] == 0
    assert coordinator.client.get("/api/jobs", headers=coordinator.observer).status_code == 200
    assert coordinator.client.get("/api/jobs", headers=coordinator.researcher).status_code == 429

    text = "\n".join(JsonFormatter().format(r) for r in caplog.records if not r.name.startswith("httpx"))
    assert "rate_limited" in text
    for secret in [*guesses, coordinator.observer["Authorization"][7:], coordinator.researcher["Authorization"][7:]]:
        assert secret not in text


def test_failed_console_logins_count_against_the_address(coordinator: CoordinatorClient) -> None:
    """Four refused logins: 401 with the form; the fifth: 429, unechoed; an API token in use still logs in."""
    admin_token = coordinator.admin["Authorization"][7:]
    assert coordinator.client.get("/api/nodes", headers=coordinator.admin).status_code == 200
    wrong = "mfc_wrongloginzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
    assert [_login(coordinator, wrong).status_code for _ in range(BURST)] == [401] * BURST
    refused = _login(coordinator, wrong)
    assert refused.status_code == 429
    assert wrong not in refused.text
    assert "<form" in refused.text
    assert _login(coordinator, admin_token).status_code == 303
    # Failed logins and failed API tokens share one budget per address.
    assert coordinator.client.get("/api/nodes", headers={"Authorization": f"Bearer {wrong}"}).status_code == 429
