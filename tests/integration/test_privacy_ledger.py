"""The node's epsilon ledger on SQLite and PostgreSQL: budgets, the node-wide cap, repeats, concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from common.errors import ErrorCode
from node.privacy.ledger import Budget, PrivacyBudgetExceededError, PrivacyLedger, Reservation
from node.store.db import make_engine

RESEARCHER = "researcher:alice"
STUDY = "study:diabetes-2026"


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """The node database (migrated, empty)."""
    made = make_engine(database_url)
    yield made
    made.dispose()


@pytest.fixture
def ledger(engine: sa.Engine) -> PrivacyLedger:
    """A ledger with a node-wide cap of 10 and Alice's budget of 1.0 (delta 1e-5) on the study."""
    made = PrivacyLedger(engine)
    made.set_node_cap(Budget(10.0, 1e-4))
    made.set_budget(RESEARCHER, STUDY, Budget(1.0, 1e-5))
    return made


def _reserve(ledger: PrivacyLedger, digest: str, epsilon: float, *, delta: float = 0.0, **names: str) -> Reservation:
    return ledger.reserve(
        researcher=names.get("researcher", RESEARCHER),
        study=names.get("study", STUDY),
        query_digest=digest,
        epsilon=epsilon,
        delta=delta,
        job_id=names.get("job_id", "job-1"),
    )


def test_a_reservation_is_charged_to_the_account_and_the_node_and_recorded(ledger: PrivacyLedger) -> None:
    """An entry records unit, epsilon, delta, job and time; both the account and the cap are charged."""
    reservation = _reserve(ledger, "sha256:q1", 0.25, delta=1e-6)
    assert reservation.charged
    assert reservation.answer_ref is None
    usage = ledger.usage(RESEARCHER, STUDY)
    assert usage is not None
    assert usage.spent == Budget(0.25, 1e-6)
    assert usage.remaining.epsilon == 0.75
    node = ledger.node_usage()
    assert node is not None
    assert node.spent == Budget(0.25, 1e-6)
    (entry,) = ledger.entries(researcher=RESEARCHER)
    assert (entry.unit, entry.epsilon, entry.delta, entry.job_id, entry.state) == (
        "record",
        0.25,
        1e-6,
        "job-1",
        "reserved",
    )
    assert entry.created_at > 0


def test_a_query_past_the_budget_is_refused_before_it_runs(ledger: PrivacyLedger) -> None:
    """0.6 then 0.6 of a 1.0 budget: the second is refused with PRIVACY_BUDGET_EXCEEDED and charges nothing."""
    _reserve(ledger, "sha256:q1", 0.6)
    with pytest.raises(PrivacyBudgetExceededError) as refused:
        _reserve(ledger, "sha256:q2", 0.6)
    assert refused.value.code == ErrorCode.PRIVACY_BUDGET_EXCEEDED
    assert refused.value.status == 409
    assert RESEARCHER not in str(refused.value)
    assert STUDY not in str(refused.value)
    usage = ledger.usage(RESEARCHER, STUDY)
    assert usage is not None
    assert usage.spent.epsilon == 0.6
    assert len(ledger.entries()) == 1
    with pytest.raises(PrivacyBudgetExceededError):
        _reserve(ledger, "sha256:q3", 0.1, delta=2e-5)


def test_a_repeated_identical_query_costs_nothing_and_points_to_the_same_answer(ledger: PrivacyLedger) -> None:
    """The same digest for the same researcher and study is found, not charged, and keeps its answer."""
    first = _reserve(ledger, "sha256:same", 0.4)
    ledger.record_answer(first.entry_id, "result:abc")
    again = _reserve(ledger, "sha256:same", 0.4, job_id="job-2")
    assert again == Reservation(first.entry_id, charged=False, answer_ref="result:abc")
    usage = ledger.usage(RESEARCHER, STUDY)
    assert usage is not None
    assert usage.spent.epsilon == 0.4
    assert [e.state for e in ledger.entries()] == ["released"]


def test_the_node_wide_cap_binds_across_researchers(ledger: PrivacyLedger) -> None:
    """Two researchers within their own budgets are still refused once the node-wide cap would pass."""
    ledger.set_node_cap(Budget(1.5, 1e-4))
    ledger.set_budget("researcher:bob", STUDY, Budget(1.0, 0.0))
    _reserve(ledger, "sha256:a", 1.0)
    with pytest.raises(PrivacyBudgetExceededError):
        _reserve(ledger, "sha256:b", 0.6, researcher="researcher:bob")
    _reserve(ledger, "sha256:c", 0.5, researcher="researcher:bob")


def test_without_an_account_or_a_cap_nothing_is_answered(engine: sa.Engine) -> None:
    """A researcher with no budget on the study, or a node with no cap, is refused (fail closed)."""
    ledger = PrivacyLedger(engine)
    ledger.set_budget(RESEARCHER, STUDY, Budget(1.0, 0.0))
    with pytest.raises(PrivacyBudgetExceededError):
        _reserve(ledger, "sha256:q", 0.1)
    ledger.set_node_cap(Budget(1.0, 0.0))
    with pytest.raises(PrivacyBudgetExceededError):
        _reserve(ledger, "sha256:q", 0.1, study="study:other")
    _reserve(ledger, "sha256:q", 0.1)


def test_budgets_add_up_exactly(ledger: PrivacyLedger) -> None:
    """0.1 + 0.2 of a 0.3 budget fits (no floating-point overspend or false refusal)."""
    ledger.set_budget(RESEARCHER, STUDY, Budget(0.3, 0.0))
    _reserve(ledger, "sha256:x", 0.1)
    _reserve(ledger, "sha256:y", 0.2)
    with pytest.raises(PrivacyBudgetExceededError):
        _reserve(ledger, "sha256:z", 1e-9)


def test_a_reservation_is_refunded_only_while_nothing_was_released(ledger: PrivacyLedger) -> None:
    """cancel refunds a reserved entry; once its answer is released, there is no refund."""
    failed = _reserve(ledger, "sha256:failed", 0.5)
    assert ledger.cancel(failed.entry_id) is True
    usage = ledger.usage(RESEARCHER, STUDY)
    assert usage is not None
    assert usage.spent.epsilon == 0.0
    released = _reserve(ledger, "sha256:ok", 0.5)
    ledger.record_answer(released.entry_id, "result:1")
    assert ledger.cancel(released.entry_id) is False
    usage = ledger.usage(RESEARCHER, STUDY)
    assert usage is not None
    assert usage.spent.epsilon == 0.5


def _race(database_url: str, attempts: list[tuple[str, str, str]]) -> list[str]:
    """Run the reservations at once, each thread on its own engine (its own connection and lock)."""
    barrier = threading.Barrier(len(attempts))
    outcomes: list[str] = [""] * len(attempts)

    def attempt(index: int, researcher: str, study: str, digest: str) -> None:
        engine = make_engine(database_url)
        try:
            ledger = PrivacyLedger(engine)
            barrier.wait()
            try:
                _reserve(ledger, digest, 0.6, researcher=researcher, study=study)
                outcomes[index] = "charged"
            except PrivacyBudgetExceededError:
                outcomes[index] = "refused"
        finally:
            engine.dispose()

    threads = [threading.Thread(target=attempt, args=(i, *a)) for i, a in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_concurrent_jobs_that_together_would_overspend_leave_exactly_one_refused(
    database_url: str, ledger: PrivacyLedger
) -> None:
    """Two jobs reserving 0.6 of one 1.0 budget at the same moment: one charged, one refused, 0.6 spent."""
    for round_number in range(5):
        ledger.set_budget(RESEARCHER, STUDY, Budget(0.6 * (round_number + 1) + 0.4, 1e-5))
        outcomes = _race(
            database_url,
            [(RESEARCHER, STUDY, f"sha256:r{round_number}-a"), (RESEARCHER, STUDY, f"sha256:r{round_number}-b")],
        )
        assert sorted(outcomes) == ["charged", "refused"]
    usage = ledger.usage(RESEARCHER, STUDY)
    assert usage is not None
    assert usage.spent.epsilon == pytest.approx(3.0)
    assert len(ledger.entries()) == 5


def test_two_concurrent_jobs_of_two_researchers_cannot_together_pass_the_node_cap(
    database_url: str, ledger: PrivacyLedger
) -> None:
    """Each researcher has budget, the node-wide cap has room for one of the two: exactly one is refused."""
    ledger.set_budget("researcher:bob", STUDY, Budget(5.0, 0.0))
    ledger.set_budget(RESEARCHER, STUDY, Budget(5.0, 0.0))
    for round_number in range(5):
        ledger.set_node_cap(Budget(0.6 * (round_number + 1) + 0.4, 1e-4))
        outcomes = _race(
            database_url,
            [(RESEARCHER, STUDY, f"sha256:n{round_number}-a"), ("researcher:bob", STUDY, f"sha256:n{round_number}-b")],
        )
        assert sorted(outcomes) == ["charged", "refused"]
    node = ledger.node_usage()
    assert node is not None
    assert node.spent.epsilon == pytest.approx(3.0)
