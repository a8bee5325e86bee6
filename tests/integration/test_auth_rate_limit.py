"""Rate limits at the node: refused bearer tokens per client address, record-locator lookups per token."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from common.logs import JsonFormatter
from node.store.tokens import Role, create_token
from tests.integration.conftest import NodeClient, make_node_client, token_lookups

BURST = 5


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[NodeClient]:
    """A node app with a small failed-authentication budget (5, refilled slowly) and a locate budget of 2."""
    made = make_node_client(
        database_url,
        tmp_path,
        auth_failure_burst=BURST,
        auth_failure_refill_per_s=0.001,
        locate_burst=2,
        locate_refill_per_s=0.001,
    )
    with made.client:
        yield made
    made.engine.dispose()


def test_refused_tokens_past_the_budget_get_429_without_a_lookup_and_a_known_token_keeps_working(
    node: NodeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Five unknown tokens get 401, the sixth 429 (RATE_LIMITED) with no token lookup; the admin token still reads.

    The clinician's token authenticated before the address went over its budget, so it is still looked up
    and works; the admin's first use from the over-limit address is refused until the bucket refills.
    """
    caplog.set_level(logging.DEBUG)
    assert node.client.get("/fhir/Patient", headers=node.clinician).status_code == 200
    guesses = [f"mfn_guess{i:02d}" + "x" * 38 for i in range(BURST + 2)]
    statuses = [
        node.client.get("/fhir/Patient", headers={"Authorization": f"Bearer {guess}"}).status_code
        for guess in guesses[:BURST]
    ]
    assert statuses == [401] * BURST
    lookups = token_lookups(node.engine)
    refused = node.client.get("/fhir/Patient", headers={"Authorization": f"Bearer {guesses[BURST]}"})
    assert refused.status_code == 429
    assert orjson.loads(refused.content)["issue"][0]["details"]["coding"][0]["code"] == "rate_limited"
    assert lookups[0] == 0, "an over-limit address's unknown token is not looked up"
    admin_api = node.client.get("/admin/v1/policy", headers={"Authorization": f"Bearer {guesses[BURST + 1]}"})
    assert admin_api.status_code == 429
    assert orjson.loads(admin_api.content)["error"]["code"] == "rate_limited"

    assert node.client.get("/fhir/Patient", headers=node.clinician).status_code == 200
    assert lookups[0] == 1, "a known token is still looked up (a revoked one would fail)"
    assert node.client.get("/fhir/Patient", headers=node.admin).status_code == 429

    text = "\n".join(JsonFormatter().format(r) for r in caplog.records if not r.name.startswith("httpx"))
    assert "rate_limited" in text
    for secret in [*guesses, node.admin["Authorization"][7:], node.clinician["Authorization"][7:]]:
        assert secret not in text
        assert secret[4:20] not in text


def test_missing_credentials_do_not_count_against_the_address(node: NodeClient) -> None:
    """Requests without a token are 401 and spend nothing: a client that forgot its token is not locked out."""
    for _ in range(BURST * 2):
        assert node.client.get("/fhir/Patient").status_code == 401
    assert node.client.get("/fhir/Patient", headers=node.admin).status_code == 200


def test_record_locator_lookups_are_limited_per_token(node: NodeClient) -> None:
    """Past its locate budget a clinician token gets 429 before the locator is asked; other tokens are not limited."""
    first = [node.client.get("/locate", params={"patient": "p1"}, headers=node.clinician) for _ in range(2)]
    assert [r.status_code for r in first] == [409, 409]  # not enrolled: linkage_not_configured
    third = node.client.get("/locate", params={"patient": "p1"}, headers=node.clinician)
    assert third.status_code == 429
    assert orjson.loads(third.content)["error"]["code"] == "rate_limited"
    assert "p1" not in third.text
    _, other = create_token(node.engine, Role.CLINICIAN, "second clinician")
    again = node.client.get("/locate", params={"patient": "p1"}, headers={"Authorization": f"Bearer {other}"})
    assert again.status_code == 409
