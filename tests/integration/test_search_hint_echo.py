"""A search error's hint names the parameter, never a modifier the request made up (an echo found in review)."""

from __future__ import annotations

import orjson

from tests.integration.conftest import NodeClient

PLANTED = "Zqxmodifier"


def _hints(body: bytes) -> list[str]:
    issues = orjson.loads(body)["issue"]
    return [issue["diagnostics"] for issue in issues if "diagnostics" in issue]


def test_an_unknown_modifier_is_not_repeated_in_the_hint(node: NodeClient) -> None:
    """``identifier:<made up>`` and ``name:<made up>`` answer 400 whose hint shows ``?`` for the modifier."""
    for parameter in ("identifier", "name"):
        response = node.client.get(f"/fhir/Patient?{parameter}:{PLANTED}=x", headers=node.clinician)
        assert response.status_code == 400
        assert PLANTED.casefold() not in response.text.casefold()
        assert _hints(response.content) == [f"{parameter}:?: unsupported modifier"]


def test_a_known_modifier_on_the_wrong_kind_of_parameter_is_named(node: NodeClient) -> None:
    """``gender:exact`` (a string modifier on a token parameter): the hint names it, as the server's own word."""
    response = node.client.get("/fhir/Patient?gender:exact=female", headers=node.clinician)
    assert response.status_code == 400
    assert _hints(response.content) == ["gender:exact: unsupported modifier"]
