"""No token, enrolment code or key reaches the coordinator's logs in a representative flow."""

from __future__ import annotations

import logging

import pytest

from common.logs import JsonFormatter
from coordinator.store.enrolment import create_enrolment_code, enrol_node
from coordinator.store.tokens import TOKEN_PREFIX, Role, create_token
from tests.integration.coordinator.conftest import CoordinatorClient, new_public_key


def test_logs_carry_no_tokens_codes_or_keys(coordinator: CoordinatorClient, caplog: pytest.LogCaptureFixture) -> None:
    """Issuing, using and refusing tokens and codes, and listing nodes, leave none of their secrets in the logs."""
    caplog.set_level(logging.DEBUG)
    engine = coordinator.engine
    _, token = create_token(engine, role=Role.OBSERVER)
    issued = create_enrolment_code(engine, node_name="Site A", ttl_s=60)
    key = new_public_key()
    enrol_node(engine, code=issued.code, public_key=key)
    coordinator.client.get("/api/nodes", headers={"Authorization": f"Bearer {token}"})
    coordinator.client.get("/api/nodes", headers={"Authorization": f"Bearer {token}x"})
    coordinator.client.get("/api/nodes", headers=coordinator.researcher)
    coordinator.client.get("/api/nodes", headers={"Authorization": f"Bearer {TOKEN_PREFIX}{issued.code}"})
    assert caplog.records, "the flow logged nothing, so the test proves nothing"
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    for secret in (token, issued.code, issued.code[4:], key, *coordinator.admin.values()):
        assert secret not in logged
