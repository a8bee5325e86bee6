"""The job runner: one worker thread per running job, off the web server's event loop.

Jobs run side by side (a count submitted during a FedAvg job is not queued behind it): each worker has
its own :class:`~coordinator.federation.grid.MedfedGrid` over its own
:class:`~coordinator.federation.channel_transport.ChannelTransport`; the process keeps Flower's sentinel
``TaskIdentity`` (see :mod:`common.flower`) and the Grid stamps each job's run id.

What the runner writes to the store, per job: the status (``running``, then ``succeeded`` with a result,
``failed`` with a reason, or ``cancelled``), one row per round (``start_round`` / ``finish_round`` with
the per-node outcome and reply time of its last attempt), each node's part in the job, and, for FedAvg,
the state after every round (``save_job_state``, with the round's model kept by
:mod:`coordinator.store.checkpoints` in the same transaction), from which :meth:`JobRunner.start` resumes jobs that a
restart left ``running``. A resumed job first drops its unanswered messages (the interrupted round is
run again with new message ids; see :mod:`coordinator.federation.driver`).

Stopping: :meth:`JobRunner.cancel` ends a job for good (status ``cancelled``, messages dropped; the
driver stops before its next round); :meth:`JobRunner.stop` (shutdown) stops every worker before its next
round and leaves the job ``running``, to be resumed by the next runner on the same database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from common.errors import ConflictError, MedfedError, NotFoundError
from common.ids import JobId
from coordinator.federation.channel_transport import ChannelTransport
from coordinator.federation.driver import (
    ATTEMPTS_PER_ROUND,
    DriverState,
    FedAvgDriver,
    NodeOutcome,
    StopRequestedError,
    arrays_digest,
    encode_arrays,
    initial_state,
)
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.analysis import run_analysis
from coordinator.federation.jobs.count import count_by_node
from coordinator.federation.jobs.learning import privacy_report
from coordinator.federation.jobs.specs import AnalysisSpec, CountSpec, FedAvgMlpSpec, LearningSpec, parse_spec
from coordinator.federation.notifier import ChannelNotifier
from coordinator.store import checkpoints, jobs, messages, nodes
from coordinator.store.db import now_micros, write_transaction

__all__ = ["AfterRound", "JobRunner"]

_log = logging.getLogger("medfed.coordinator.jobs")
_DEADLINE_SLACK_S = 60.0

AfterRound = Callable[[str, int], None]
"""Called by a worker after each completed round with (job id, round): a hook for operators and tests."""


class _Worker:
    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.cancelled = threading.Event()


class JobRunner:
    """Runs the coordinator's jobs in worker threads; thread-safe."""

    def __init__(
        self,
        engine: Engine,
        notifier: ChannelNotifier,
        *,
        offline_after_s: float,
        after_round: AfterRound | None = None,
        checkpoint_budget_bytes: int = checkpoints.DEFAULT_BUDGET_BYTES,
    ) -> None:
        """``checkpoint_budget_bytes``: bytes of per-round models a job keeps (:mod:`coordinator.store.checkpoints`)."""
        self._engine = engine
        self._checkpoint_budget_bytes = checkpoint_budget_bytes
        self._notifier = notifier
        self._offline_after_s = offline_after_s
        self._after_round = after_round
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # --- control ------------------------------------------------------------------------------------

    def start(self) -> list[str]:
        """Start workers for the jobs a previous process left ``submitted`` or ``running``; their ids."""
        resumed: list[str] = []
        for status in (jobs.JobStatus.RUNNING, jobs.JobStatus.SUBMITTED):
            for job in jobs.list_jobs(self._engine, status=status, limit=10_000):
                self.submit(job.id)
                resumed.append(job.id)
        if resumed:
            _log.info("resuming %d job(s)", len(resumed))
        return resumed

    def submit(self, job_id: str) -> None:
        """Start the job's worker (nothing happens if it has one already)."""
        with self._lock:
            if self._stopping.is_set() or job_id in self._workers:
                return
            thread = threading.Thread(target=self._run, args=(job_id,), name="medfed-job", daemon=True)
            self._workers[job_id] = _Worker(thread)
        thread.start()

    def cancel(self, job_id: str) -> jobs.JobRecord:
        """Cancel a submitted or running job: status ``cancelled``, unanswered messages dropped.

        The worker stops before its next round. ConflictError when the job has ended already.
        """
        record = jobs.set_job_status(self._engine, job_id=job_id, status=jobs.JobStatus.CANCELLED)
        with self._lock:
            worker = self._workers.get(job_id)
        if worker is not None:
            worker.cancelled.set()
        messages.drop_job_messages(self._engine, job_id=job_id, reason=messages.DropReason.CANCELLED)
        return record

    def join(self, job_id: str, timeout: float | None = None) -> bool:
        """Wait for the job's worker to end; True when it has (or never ran here)."""
        with self._lock:
            worker = self._workers.get(job_id)
        if worker is None:
            return True
        worker.thread.join(timeout)
        return not worker.thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Shutdown: every worker stops before its next round, its job left ``running`` for the next runner.

        Waits up to ``timeout`` s in all for the other workers (a round in flight may take longer; the
        threads are daemons). Callable from a worker's own ``after_round`` hook.
        """
        self._stopping.set()
        ends = time.monotonic() + timeout
        with self._lock:
            threads = [worker.thread for worker in self._workers.values()]
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, ends - time.monotonic()))

    # --- one job ------------------------------------------------------------------------------------

    def _stop_requested(self, job_id: str) -> bool:
        with self._lock:
            worker = self._workers.get(job_id)
        return self._stopping.is_set() or (worker is not None and worker.cancelled.is_set())

    def _run(self, job_id: str) -> None:
        try:
            job = jobs.get_job(self._engine, job_id=job_id)
            resuming = job.status is jobs.JobStatus.RUNNING
            if job.status is jobs.JobStatus.SUBMITTED:
                job = jobs.set_job_status(self._engine, job_id=job_id, status=jobs.JobStatus.RUNNING)
            elif not resuming:
                return
            spec = parse_spec(job.spec)
            if resuming and isinstance(spec, CountSpec):  # a count re-asks with new ids; its old queries go
                messages.drop_job_messages(self._engine, job_id=job_id, reason=messages.DropReason.DEADLINE_PASSED)
            # A FedAvg round re-sends the same deterministic ids (see driver.py): replies that arrived are
            # used, and nodes that already answered answer from their kept replies — nothing runs twice.
            # An analysis re-runs from step 1 with the same deterministic ids (see jobs/analysis.py).
            if isinstance(spec, AnalysisSpec):
                result = self._analysis(job, spec)
            else:
                result = self._count(job, spec) if isinstance(spec, CountSpec) else self._fedavg(job, spec)
            self._finish(job_id, jobs.JobStatus.SUCCEEDED, result=result)
        except StopRequestedError:
            return  # cancelled (the status says so already) or shut down (resumed by the next runner)
        except MedfedError as exc:
            if self._stop_requested(job_id):
                return
            _log.info("job failed", extra={"fields": {"code": str(exc.code), "error": type(exc).__name__}})
            self._finish(job_id, jobs.JobStatus.FAILED, error=exc.detail or exc.public_message)
        except Exception as exc:
            _log.error("job failed unexpectedly", exc_info=exc, extra={"fields": {"error": type(exc).__name__}})
            self._finish(job_id, jobs.JobStatus.FAILED, error=f"internal error ({type(exc).__name__})")

    def _finish(
        self, job_id: str, status: jobs.JobStatus, *, result: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        try:
            jobs.set_job_status(self._engine, job_id=job_id, status=status, result=result, error=error)
        except (ConflictError, NotFoundError):
            return  # cancelled meanwhile: the cancel stands
        if status is not jobs.JobStatus.SUCCEEDED:
            messages.drop_job_messages(self._engine, job_id=job_id, reason=messages.DropReason.CANCELLED)
        for part in jobs.list_job_nodes(self._engine, job_id=job_id):
            if part.status in (jobs.JobNodeStatus.SELECTED, jobs.JobNodeStatus.RUNNING):
                done = status is jobs.JobStatus.SUCCEEDED and part.status is jobs.JobNodeStatus.RUNNING
                final = jobs.JobNodeStatus.DONE if done else jobs.JobNodeStatus.DROPPED
                # The detail (a node's first missed round) stays: the operator needs it after the job ends too.
                jobs.set_job_node_status(
                    self._engine, job_id=job_id, node_id=part.node_id, status=final, detail=part.detail
                )

    def _grid(self, job_id: str, budget_s: float) -> MedfedGrid:
        transport = ChannelTransport(self._engine, self._notifier, offline_after_s=self._offline_after_s)
        return MedfedGrid(transport, job_id=job_id, deadline=time.time() + budget_s + _DEADLINE_SLACK_S)

    def _job_nodes(self, job_id: str) -> dict[int, str]:
        """Flower id -> node id of the nodes recorded for the job."""
        by_flower: dict[int, str] = {}
        for part in jobs.list_job_nodes(self._engine, job_id=job_id):
            by_flower[nodes.get_node(self._engine, node_id=part.node_id).flower_node_id] = part.node_id
        return by_flower

    def _count(self, job: jobs.JobRecord, spec: CountSpec) -> dict[str, Any]:
        members = self._job_nodes(job.id)
        grid = self._grid(job.id, spec.round_timeout_s)
        eligible = [node_id for node_id in grid.get_node_ids() if not members or node_id in members]
        started = time.time()
        _start_round(self._engine, job.id, 1, deadline=started + spec.round_timeout_s)
        counts = count_by_node(grid, spec.round_timeout_s, node_ids=eligible)
        outcomes = [
            NodeOutcome(node_id, "train", None, "late" if value is None else "replied")
            for node_id, value in counts.items()
        ]
        answered = [value for value in counts.values() if value is not None]
        complete = len(answered) == len(counts)
        self._record_round(job.id, 1, completed=complete, attempts=1, outcomes=outcomes, started=started)
        if not complete:
            raise ConflictError(detail=f"{len(answered)} of {len(counts)} nodes answered the count in time")
        return {"total": sum(answered), "nodes": len(answered)}

    def _fedavg(self, job: jobs.JobRecord, spec: FedAvgMlpSpec | LearningSpec) -> dict[str, Any]:
        if isinstance(spec, LearningSpec):  # its instructions name the submitter, whom nodes charge DP-SGD to
            spec = spec.for_submitter(job.submitter)
        saved = jobs.load_job_state(self._engine, job_id=job.id)
        state = (
            initial_state(spec, job.seed)
            if saved is None
            else DriverState.from_bytes(
                round=saved.round,
                arrays=saved.arrays,
                strategy_state=saved.strategy_state,
                rng_state=saved.rng_state,
            )
        )
        for record in jobs.list_rounds(self._engine, job_id=job.id):  # finished before the restart, not closed
            if record.status is jobs.RoundStatus.RUNNING and record.round <= state.round:
                jobs.finish_round(
                    self._engine,
                    job_id=job.id,
                    round=record.round,
                    status=jobs.RoundStatus.COMPLETED,
                    replies=record.replies,
                    per_node=record.per_node,
                )
        members = self._job_nodes(job.id)
        remaining = spec.rounds - state.round
        grid = self._grid(job.id, remaining * ATTEMPTS_PER_ROUND * spec.round_timeout_s)
        driver = FedAvgDriver(
            grid,
            spec,
            seed=job.seed,
            observer=_Observer(self, job.id, rounds=spec.rounds),
            eligible=(lambda ids: [i for i in ids if i in members]) if members else None,
        )
        final = driver.run(state)
        last = str(final.round)
        privacy = {"privacy": privacy_report(spec, final.round)} if isinstance(spec, LearningSpec) else {}
        return {
            **privacy,
            "rounds": final.round,
            "train_metrics": final.history.get("train", {}).get(last, {}),
            "evaluate_metrics": final.history.get("evaluate", {}).get(last, {}),
            "history": final.history,
            "arrays": {"saved": True, "names": list(final.arrays.keys()), "sha256": arrays_digest(final.arrays)},
        }

    def _analysis(self, job: jobs.JobRecord, spec: AnalysisSpec) -> dict[str, Any]:
        """Every selected node, every step; the job's nodes not named by ``spec.nodes`` are left out."""
        members = self._job_nodes(job.id)
        grid = self._grid(job.id, spec.max_rounds * spec.round_timeout_s)
        if not members:  # a job recorded without nodes (tests, tools): every eligible node
            members = {node_id: _node_name(self._engine, node_id) for node_id in grid.get_node_ids()}
        named = set(spec.nodes or members.values())
        unknown = sorted(named - set(members.values()))
        if unknown:
            raise ConflictError(
                detail=f"node(s) named by the analysis are not part of the job (unknown, or offline at "
                f"submission): {', '.join(unknown[:5])}"
            )
        selected = sorted(flower for flower, node_id in members.items() if node_id in named)
        for part in jobs.list_job_nodes(self._engine, job_id=job.id):
            if part.node_id not in named and part.status is jobs.JobNodeStatus.SELECTED:
                jobs.set_job_node_status(
                    self._engine,
                    job_id=job.id,
                    node_id=part.node_id,
                    status=jobs.JobNodeStatus.DROPPED,
                    detail="not named by the analysis",
                )
        offline = sorted(set(selected) - set(grid.get_node_ids()))
        if offline:
            raise ConflictError(
                detail=f"{len(offline)} selected node(s) are offline: {', '.join(members[f] for f in offline)}; "
                "an analysis needs every selected node"
            )
        observer = _AnalysisObserver(self, job.id)  # nodes charge DP to the submitter (signed by the trust issue)
        return run_analysis(grid, spec, nodes=selected, observer=observer, names=members, researcher=job.submitter)

    def _record_round(
        self,
        job_id: str,
        server_round: int,
        *,
        completed: bool,
        attempts: int,
        outcomes: Sequence[NodeOutcome],
        started: float,
    ) -> None:
        """Close the round's row with per-node outcomes and reply times, and update the nodes' parts."""
        members = self._job_nodes(job_id)
        received = {
            reply.message_id: reply.received_at
            for reply in messages.fetch_replies(
                self._engine, message_ids=[o.message_id for o in outcomes if o.message_id is not None]
            )
        }
        per_node: dict[str, dict[str, Any]] = {}
        for outcome in outcomes:
            node_id = members.get(outcome.node_id) or _node_name(self._engine, outcome.node_id)
            entry = per_node.setdefault(node_id, {})
            entry[outcome.phase] = outcome.outcome
            if outcome.metrics:  # a learning round's numbers per node (loss, accuracy or C-index, n)
                entry[f"{outcome.phase}_metrics"] = dict(outcome.metrics)
            at = received.get(outcome.message_id or "")
            if at is not None:
                entry[f"{outcome.phase}_ms"] = round(at / 1000 - started * 1000, 1)
        first_misses: dict[str, str | None] = {
            part.node_id: part.detail
            for part in jobs.list_job_nodes(self._engine, job_id=job_id)
            if part.detail and part.detail.startswith("missed round")
        }
        for node_id, entry in per_node.items():
            entry["attempts"] = attempts
            if node_id in members.values():
                bad = [phase for phase in ("train", "evaluate") if entry.get(phase) in ("late", "error")]
                status = jobs.JobNodeStatus.DROPPED if bad else jobs.JobNodeStatus.RUNNING
                # The first miss is what an operator needs to see; later rounds do not overwrite it.
                detail = first_misses.get(node_id) or (
                    f"missed round {server_round} ({', '.join(bad)})" if bad else None
                )
                jobs.set_job_node_status(self._engine, job_id=job_id, node_id=node_id, status=status, detail=detail)
        jobs.finish_round(
            self._engine,
            job_id=job_id,
            round=server_round,
            status=jobs.RoundStatus.COMPLETED if completed else jobs.RoundStatus.FAILED,
            replies=sum(1 for o in outcomes if o.outcome == "replied"),
            per_node=per_node,
        )


def _node_name(engine: Engine, flower_node_id: int) -> str:
    try:
        return nodes.get_node_by_flower_id(engine, flower_node_id=flower_node_id).id
    except NotFoundError:
        return f"flower-{flower_node_id}"


def _start_round(engine: Engine, job_id: str, server_round: int, *, deadline: float) -> None:
    """Record the round's start; a round left open by a restart is reused (it runs again)."""
    try:
        jobs.start_round(engine, job_id=job_id, round=server_round, deadline_at=int(deadline * 1_000_000))
    except ConflictError:
        existing = {r.round: r for r in jobs.list_rounds(engine, job_id=job_id)}.get(server_round)
        if existing is None or existing.status is not jobs.RoundStatus.RUNNING:
            raise


class _AnalysisObserver:
    """The analysis driver's view of the store for one job (one round per step).

    A resumed analysis replays its steps from 1 (answered from kept replies): the steps a previous
    runner recorded as completed keep their rows.
    """

    def __init__(self, runner: JobRunner, job_id: str) -> None:
        self._runner = runner
        self._job_id = JobId(job_id)
        self._recorded = {
            r.round for r in jobs.list_rounds(runner._engine, job_id=job_id) if r.status is jobs.RoundStatus.COMPLETED
        }

    def round_started(self, server_round: int, *, deadline: float) -> None:
        if server_round not in self._recorded:
            _start_round(self._runner._engine, self._job_id, server_round, deadline=deadline)

    def round_finished(
        self, server_round: int, *, completed: bool, outcomes: Sequence[NodeOutcome], started: float
    ) -> None:
        if server_round in self._recorded:
            return
        self._runner._record_round(
            self._job_id, server_round, completed=completed, attempts=1, outcomes=outcomes, started=started
        )
        if completed and self._runner._after_round is not None:
            self._runner._after_round(self._job_id, server_round)

    def should_stop(self) -> bool:
        return self._runner._stop_requested(self._job_id)


class _Observer:
    """The driver's view of the store for one job."""

    def __init__(self, runner: JobRunner, job_id: str, *, rounds: int) -> None:
        self._runner = runner
        self._job_id = JobId(job_id)
        self._rounds = rounds

    def round_started(self, server_round: int, *, attempt: int, deadline: float) -> None:
        if attempt == 1:
            _start_round(self._runner._engine, self._job_id, server_round, deadline=deadline)

    def round_finished(
        self, server_round: int, *, completed: bool, attempts: int, outcomes: Sequence[NodeOutcome], started: float
    ) -> None:
        self._runner._record_round(
            self._job_id, server_round, completed=completed, attempts=attempts, outcomes=outcomes, started=started
        )
        if completed and self._runner._after_round is not None:
            self._runner._after_round(self._job_id, server_round)

    def state_saved(self, state: DriverState) -> None:
        """The state to resume from and, when retention keeps the round, its model: in one transaction."""
        arrays, now = encode_arrays(state.arrays), now_micros()
        interval = checkpoints.checkpoint_interval(
            rounds=self._rounds, model_bytes=len(arrays), budget_bytes=self._runner._checkpoint_budget_bytes
        )
        with write_transaction(self._runner._engine) as conn:
            if checkpoints.keeps_round(state.round, rounds=self._rounds, interval=interval):
                checkpoints.save_checkpoint(conn, job_id=self._job_id, round=state.round, arrays=arrays, now=now)
            jobs.save_job_state(
                conn,
                job_id=self._job_id,
                round=state.round,
                arrays=arrays,
                strategy_state=state.strategy_bytes(),
                rng_state=state.rng_bytes(),
                now=now,
            )

    def should_stop(self) -> bool:
        return self._runner._stop_requested(self._job_id)
