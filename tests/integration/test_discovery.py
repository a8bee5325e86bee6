"""Coordinator discovery with zeroconf on loopback: a locator filtered by the claimed fingerprint."""

from __future__ import annotations

from common.discovery import CoordinatorAdvertiser, discover_coordinators

LOOPBACK = ["127.0.0.1"]


def test_discovery_finds_the_coordinator_with_the_expected_fingerprint() -> None:
    """Among two advertisers, the one claiming the enrolment code's fingerprint is found with its address."""
    with (
        CoordinatorAdvertiser(
            instance="medfed-coordinator",
            port=8443,
            addresses=["127.0.0.1"],
            fingerprint="sha256:right",
            interfaces=LOOPBACK,
        ),
        CoordinatorAdvertiser(
            instance="impostor", port=9443, addresses=["127.0.0.1"], fingerprint="sha256:wrong", interfaces=LOOPBACK
        ),
    ):
        found = discover_coordinators(timeout_s=10, fingerprint="sha256:right", interfaces=LOOPBACK)
    assert [(c.port, c.fingerprint) for c in found] == [(8443, "sha256:right")]
    assert found[0].url == "https://127.0.0.1:8443"


def test_an_unmatched_fingerprint_finds_nothing() -> None:
    """With no advertiser claiming the fingerprint, discovery returns nothing after its window."""
    with CoordinatorAdvertiser(
        instance="other", port=8443, addresses=["127.0.0.1"], fingerprint="sha256:other", interfaces=LOOPBACK
    ):
        assert discover_coordinators(timeout_s=1.5, fingerprint="sha256:absent", interfaces=LOOPBACK) == []
