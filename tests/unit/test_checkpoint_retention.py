"""Which rounds' models a job keeps (``coordinator.store.checkpoints``), and how a kept round is replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.store import checkpoints, jobs
from coordinator.store.db import make_engine
from coordinator.store.migrate import upgrade


def _kept(rounds: int, model_bytes: int, budget_bytes: int) -> list[int]:
    interval = checkpoints.checkpoint_interval(rounds=rounds, model_bytes=model_bytes, budget_bytes=budget_bytes)
    return [r for r in range(1, rounds + 1) if checkpoints.keeps_round(r, rounds=rounds, interval=interval)]


def test_a_job_within_its_budget_keeps_every_round() -> None:
    """200 rounds of a 1 MB model fit the default budget: every round is kept."""
    assert _kept(200, 1_000_000, checkpoints.DEFAULT_BUDGET_BYTES) == list(range(1, 201))


def test_a_job_over_its_budget_keeps_every_kth_round_and_its_last() -> None:
    """10 rounds of 100 bytes with 300 bytes to keep: every 4th round and the last, never over budget."""
    kept = _kept(10, 100, 300)
    assert kept == [4, 8, 10]
    assert len(kept) * 100 <= 300


def test_the_interval_refuses_a_budget_of_nothing() -> None:
    """A zero budget is a configuration error, not a job that silently keeps nothing."""
    with pytest.raises(ValueError, match="budget"):
        checkpoints.checkpoint_interval(rounds=3, model_bytes=10, budget_bytes=0)


def test_a_round_saved_again_replaces_its_model(tmp_path: Path) -> None:
    """A round run again after a restart writes its model once more: one row, the new bytes."""
    engine = make_engine(f"sqlite:///{tmp_path / 'coordinator.db'}")
    upgrade(engine)
    job = jobs.create_job(engine, kind="learning", spec={}, submitter="test", seed=1, node_ids=[])
    checkpoints.save_checkpoint(engine, job_id=job.id, round=1, arrays=b"first", now=1)
    checkpoints.save_checkpoint(engine, job_id=job.id, round=1, arrays=b"again", now=2)
    checkpoints.save_checkpoint(engine, job_id=job.id, round=2, arrays=b"second", now=3)
    assert checkpoints.list_checkpoint_rounds(engine, job_id=job.id) == [1, 2]
    kept = checkpoints.load_checkpoint(engine, job_id=job.id, round=1)
    assert kept is not None
    assert (kept.arrays, kept.saved_at) == (b"again", 2)
    assert checkpoints.load_checkpoint(engine, job_id=job.id, round=3) is None
