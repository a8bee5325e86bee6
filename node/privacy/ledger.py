"""The node's epsilon ledger: differential privacy is spent per researcher x study, under a node-wide cap.

Rules (the analytics and the learning jobs charge the same ledger):

- an account per (researcher, study) with an epsilon and a delta budget, set by the node's admin; a
  researcher without an account on the study has no budget;
- a node-wide cap over all accounts together; a node without a cap answers no DP query (fail closed);
- :meth:`PrivacyLedger.reserve` is called *before* a job runs and is atomic: two concurrent jobs that
  together would overspend leave exactly one refused (:class:`PrivacyBudgetExceededError`), and a job
  that would exceed either budget is refused before it touches the data;
- an identical query (same canonical digest, which names the data snapshot, for the same researcher and
  study) is charged once: the DP noise is seeded by the digest (:func:`common.privacy.dp.noise_rng`), so
  the repeat returns the identical answer and reveals nothing new;
- every entry records the unit (``"record"``: record-level DP), epsilon, delta, the job and the time;
  :meth:`record_answer` adds a reference to the released answer; :meth:`cancel` refunds a reservation
  only while nothing was released.

Epsilon and delta are stored as integers (1e-9 and 1e-15 units): costs are rounded up and budgets down,
so rounding never lets more through than was granted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from sqlalchemy.engine import Engine

from common.errors import ConflictError, ErrorCode, InputError
from node.store import ledger as store

__all__ = [
    "DELTA_SCALE",
    "EPSILON_SCALE",
    "UNIT_RECORD",
    "Budget",
    "LedgerEntry",
    "PrivacyBudgetExceededError",
    "PrivacyLedger",
    "Reservation",
]

EPSILON_SCALE = 10**9
DELTA_SCALE = 10**15
UNIT_RECORD = "record"
_UNITS = frozenset({UNIT_RECORD})
_MAX_NAME = 200
_MAX_DIGEST = 80
_MAX_EPSILON = 1e6


class PrivacyBudgetExceededError(ConflictError):
    """A query would spend more epsilon or delta than its account or the node-wide cap has left."""

    default_code = ErrorCode.PRIVACY_BUDGET_EXCEEDED


@dataclass(frozen=True, slots=True)
class Budget:
    """An amount of privacy: epsilon and delta."""

    epsilon: float
    delta: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """A query's place in the ledger; ``charged`` is False for a repeat, which costs nothing."""

    entry_id: int
    charged: bool
    answer_ref: str | None


@dataclass(frozen=True, slots=True)
class Usage:
    """A budget (an account's or the node's cap) and what has been spent of it."""

    budget: Budget
    spent: Budget

    @property
    def remaining(self) -> Budget:
        """What is left (never negative)."""
        return Budget(
            max(0.0, self.budget.epsilon - self.spent.epsilon), max(0.0, self.budget.delta - self.spent.delta)
        )


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One charged query, as the admin console and the audit show it."""

    entry_id: int
    researcher: str
    study: str
    query_digest: str
    job_id: str | None
    unit: str
    epsilon: float
    delta: float
    state: str
    answer_ref: str | None
    created_at: int


def _units(value: float, scale: int, *, up: bool) -> int:
    """``value * scale`` as an integer, from the shortest decimal spelling of ``value`` (0.1 is 0.1)."""
    scaled = Decimal(repr(float(value))) * scale
    return int(scaled.to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR))


def _check_amount(epsilon: float, delta: float, *, cost: bool) -> None:
    if not isinstance(epsilon, int | float) or not math.isfinite(epsilon) or not 0 <= epsilon <= _MAX_EPSILON:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="epsilon must be a finite number in [0, 1e6]")
    if cost and epsilon == 0:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="a differentially private query costs epsilon > 0")
    if not isinstance(delta, int | float) or not math.isfinite(delta) or not 0 <= delta < 1:
        raise InputError(ErrorCode.INVALID_REQUEST, detail="delta must be a number in [0, 1)")


def _check_name(value: str, what: str, limit: int = _MAX_NAME) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"{what} must be 1..{limit} characters")


class PrivacyLedger:
    """The ledger over one node database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        """Use the node's engine; the tables come with the node's migrations."""
        self._engine = engine

    def set_budget(self, researcher: str, study: str, budget: Budget) -> None:
        """Give a researcher a budget on a study (or change it; what was spent stays spent)."""
        _check_name(researcher, "researcher")
        _check_name(study, "study")
        _check_amount(budget.epsilon, budget.delta, cost=False)
        store.set_account_budget(
            self._engine,
            researcher=researcher,
            study=study,
            epsilon_budget_nano=_units(budget.epsilon, EPSILON_SCALE, up=False),
            delta_budget_femto=_units(budget.delta, DELTA_SCALE, up=False),
        )

    def set_node_cap(self, cap: Budget) -> None:
        """Set the node-wide cap over all accounts."""
        _check_amount(cap.epsilon, cap.delta, cost=False)
        store.set_node_cap(
            self._engine,
            epsilon_cap_nano=_units(cap.epsilon, EPSILON_SCALE, up=False),
            delta_cap_femto=_units(cap.delta, DELTA_SCALE, up=False),
        )

    def reserve(
        self,
        *,
        researcher: str,
        study: str,
        query_digest: str,
        epsilon: float,
        delta: float,
        job_id: str | None = None,
        unit: str = UNIT_RECORD,
    ) -> Reservation:
        """Charge a query before it runs; PrivacyBudgetExceededError if the account or the node cap would pass.

        A query already in the ledger for this researcher and study is not charged again.
        """
        _check_name(researcher, "researcher")
        _check_name(study, "study")
        _check_name(query_digest, "query digest", _MAX_DIGEST)
        if job_id is not None:
            _check_name(job_id, "job id")
        if unit not in _UNITS:
            raise InputError(ErrorCode.INVALID_REQUEST, detail="the privacy unit must be record")
        _check_amount(epsilon, delta, cost=True)
        result = store.reserve(
            self._engine,
            researcher=researcher,
            study=study,
            query_digest=query_digest,
            job_id=job_id,
            unit=unit,
            epsilon_nano=_units(epsilon, EPSILON_SCALE, up=True),
            delta_femto=_units(delta, DELTA_SCALE, up=True),
        )
        if result.refused is not None or result.entry_id is None:
            where = "the node-wide cap" if result.refused == "node" else "the researcher's study budget"
            raise PrivacyBudgetExceededError(detail=f"the query would exceed {where}")
        return Reservation(result.entry_id, result.charged, result.answer_ref)

    def record_answer(self, entry_id: int, answer_ref: str) -> None:
        """Note that the reserved query's answer was released, and where it is kept."""
        _check_name(answer_ref, "answer reference")
        if not store.record_answer(self._engine, entry_id=entry_id, answer_ref=answer_ref):
            raise InputError(ErrorCode.INVALID_REQUEST, detail="no such ledger entry")

    def cancel(self, entry_id: int) -> bool:
        """Refund a reservation whose job released nothing; False when it was released (no refund) or absent."""
        return store.cancel(self._engine, entry_id=entry_id)

    def usage(self, researcher: str, study: str) -> Usage | None:
        """An account's budget and spending, or None when the researcher has no budget on the study."""
        row = store.get_account(self._engine, researcher=researcher, study=study)
        if row is None:
            return None
        return Usage(
            Budget(row.epsilon_budget_nano / EPSILON_SCALE, row.delta_budget_femto / DELTA_SCALE),
            Budget(row.epsilon_spent_nano / EPSILON_SCALE, row.delta_spent_femto / DELTA_SCALE),
        )

    def node_usage(self) -> Usage | None:
        """The node-wide cap and the spending of all accounts together, or None when no cap is set."""
        row = store.get_node_cap(self._engine)
        if row is None:
            return None
        return Usage(
            Budget(row.epsilon_cap_nano / EPSILON_SCALE, row.delta_cap_femto / DELTA_SCALE),
            Budget(row.epsilon_spent_nano / EPSILON_SCALE, row.delta_spent_femto / DELTA_SCALE),
        )

    def entries(self, *, researcher: str | None = None, study: str | None = None) -> list[LedgerEntry]:
        """The ledger, oldest entry first."""
        return [
            LedgerEntry(
                entry_id=row.id,
                researcher=row.researcher,
                study=row.study,
                query_digest=row.query_digest,
                job_id=row.job_id,
                unit=row.unit,
                epsilon=row.epsilon_nano / EPSILON_SCALE,
                delta=row.delta_femto / DELTA_SCALE,
                state=row.state,
                answer_ref=row.answer_ref,
                created_at=row.created_at,
            )
            for row in store.list_entries(self._engine, researcher=researcher, study=study)
        ]
