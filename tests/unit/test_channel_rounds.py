"""The node answers only rounds that the job allows."""

from __future__ import annotations

import pytest

from node.federation.channel import _round_allowed


@pytest.mark.parametrize(
    ("server_round", "rounds", "allowed"),
    [
        (None, 3, True),
        (1, 3, True),
        (3, 3, True),
        (4, 3, False),
        (0, 3, False),
        (-1, None, False),
        ("2", 3, False),
        (7, None, True),
    ],
)
def test_rounds_outside_the_job_are_refused(server_round: object, rounds: object, allowed: bool) -> None:
    """No round, or 1..rounds, is allowed; anything else is refused (a job without a round count: any round >= 1)."""
    assert _round_allowed(server_round, rounds) is allowed
