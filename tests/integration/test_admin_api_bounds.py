"""The admin API answers 4xx, never 500, to a hold id beyond a database integer (found by the fuzzer)."""

from __future__ import annotations

import orjson
import pytest

from tests.integration.conftest import NodeClient


@pytest.mark.parametrize("decision", ["release", "withhold"])
def test_a_hold_id_beyond_64_bits_is_a_400_and_an_unknown_one_a_404(node: NodeClient, decision: str) -> None:
    """A 67-bit id (what the fuzzer sent) or one past PostgreSQL's INTEGER is refused as invalid; the largest
    id that fits is simply not found."""
    too_big = node.client.post(f"/admin/v1/releases/66352642235152244736/{decision}", headers=node.admin)
    assert too_big.status_code == 400
    assert orjson.loads(too_big.content)["error"]["code"] == "invalid_request"
    assert "66352642235152244736" not in too_big.text
    assert node.client.post(f"/admin/v1/releases/{2**31}/{decision}", headers=node.admin).status_code == 400
    largest = node.client.post(f"/admin/v1/releases/{2**31 - 1}/{decision}", headers=node.admin)
    assert largest.status_code == 404
