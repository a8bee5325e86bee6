"""The coordinator side of the ``analysis`` job: a :mod:`common.analytics` state machine over the Grid.

Per step (a round; steps count from 1):

1. one Flower ``query`` to every selected node, carrying the task and the step's request as JSON
   (:mod:`common.analytics.task`), with a message id derived from (job, step, node): a job resumed
   after a coordinator restart runs again from step 1 with the same ids, so replies that arrived are
   reused and nodes answer from their kept replies — nothing runs twice, and the state machine,
   being a pure function of the replies, arrives where it was;
2. the replies, in node-id order; **every** selected node must answer: a node that is late or
   refuses fails the job with a reason that names the node and, for a refusal, the node's catalog
   code and location-only hints (an analysis never silently drops a node — a total over fewer
   hospitals is a different answer, not an approximate one);
3. the node's snapshot id must be the one it named at step 1 (a node pins its data for the job; a
   change means the node lost its pin and read other data, and the job fails rather than mix them);
4. the analysis' merge (one-shot) or step (iterative) turns the partials into the result or the next
   request. A refusal there (a rank-deficient design, say) fails the job with its reason and hints.

The result stored for the job: the analysis' result, the number of steps, and per node its status,
snapshot id and the disclosure rules it applied (its method and noise parameters: the result's
metadata). Nodes' released partials may hold suppressed cells; the merges never read one as 0
(:mod:`common.analytics.cells`).

The task every node gets carries the job's privacy block (:class:`common.analytics.task.TaskPrivacy`):
the study, the DP request, secure aggregation, the job id, and the researcher — the job's submitter,
the name in the researcher's certificate. Nodes do not take the coordinator's word for any of it: each
compares the task with the spec the researcher signed and with the certificate
(``node/federation/binding.py``, ``docs/trust.md``).

**Secure aggregation** (``secure_aggregation``; :mod:`common.analytics.secure`): step 1 collects every
node's fresh round key and declared maximum, step 2 sends every node the round and the others' keys and
adds the masked vectors mod ``2**k``; the coordinator sees only the totals and suppresses them with the
largest ``min_cell`` a node declared. A node that does not send its masked vector fails the job with
``secure_aggregation_failed``: the others' vectors cannot be unmasked without it, and an analysis never
drops a node.

**Distinct counts** (``distinct_count``; :mod:`common.analytics.distinct`): the same two steps, always,
with every node's job-salted bitmap of its cohort's persons as the vector, summed mod ``2**32`` (so a
bucket's sum says nothing of how many nodes set it); the coordinator estimates the union's size from
the summed bitmap and releases it rounded and suppressed below the larger of the protocol's minimum and
every node's declared ``min_cell``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from pydantic import BaseModel

from common.analytics.distinct import BITMAP_MAX, DISTINCT_COUNT, DistinctCountParams, distinct_result
from common.analytics.params import parse_params, parse_partials
from common.analytics.registry import Iterative
from common.analytics.secure import (
    SecureKeysPartial,
    SecureKeysRequest,
    SecureMaskPartial,
    SecureMaskRequest,
    result_from_totals,
    vector_length,
)
from common.analytics.task import (
    ANALYSIS_ERROR_CODE,
    DISCLOSURE_KEY,
    PARTIAL_KEY,
    RECORD,
    REQUEST_KEY,
    ROUND_KEY,
    SNAPSHOT_KEY,
    TASK_KEY,
    AnalysisTask,
    decode_refusal,
    from_wire,
    to_wire,
)
from common.errors import CATALOG, ConflictError, MedfedError
from common.flower import assign_message_id, deterministic_message_id
from common.privacy.secure_sum import (
    MaskedVector,
    SecureAggregationError,
    SecureSumRound,
    aggregate,
    modulus_bits_for,
)
from coordinator.federation.driver import NodeOutcome, Outcome, StopRequestedError
from coordinator.federation.grid import MedfedGrid
from coordinator.federation.jobs.specs import AnalysisSpec

__all__ = ["AnalysisObserver", "NodeAnswer", "run_analysis"]

_MAX_NAMED = 5
_T = TypeVar("_T")


class AnalysisObserver(Protocol):
    """What the runner learns from the driver, and how it asks the driver to stop."""

    def round_started(self, server_round: int, *, deadline: float) -> None:
        """A step starts; its replies are awaited until ``deadline`` (Unix time)."""
        ...

    def round_finished(
        self, server_round: int, *, completed: bool, outcomes: Sequence[NodeOutcome], started: float
    ) -> None:
        """A step ends: every node answered (``completed``), or not."""
        ...

    def should_stop(self) -> bool:
        """True when the driver should stop before the next step."""
        ...


@dataclass(frozen=True, slots=True)
class NodeAnswer:
    """One node's reply to one step: its partial, snapshot and disclosure, or why there is none."""

    node_id: int
    message_id: str | None
    outcome: Outcome
    partial: Any = None
    snapshot: str | None = None
    disclosure: Any = None
    refusal: str | None = None


def _message(task_wire: str, request: Any, server_round: int, node_id: int, scope: str) -> Message:
    record = ConfigRecord({TASK_KEY: task_wire, REQUEST_KEY: to_wire(request), ROUND_KEY: server_round})
    message = Message(RecordDict({RECORD: record}), node_id, MessageType.QUERY)
    assign_message_id(message, deterministic_message_id(scope, server_round, 1, MessageType.QUERY, node_id))
    return message


def _refusal_text(reply: Message) -> str:
    if reply.error.code != ANALYSIS_ERROR_CODE:
        return f"error reply {reply.error.code}"
    code, hints = decode_refusal(reply.error.reason or "")
    text = f"{code}: {CATALOG[code].message}"
    return text + (f" ({'; '.join(hints)})" if hints else "")


def _answer(message: Message, reply: Message | None) -> NodeAnswer:
    node_id = message.metadata.dst_node_id
    message_id = message.metadata.message_id or None
    if reply is None:
        return NodeAnswer(node_id, message_id, "late")
    if reply.has_error():
        return NodeAnswer(node_id, message_id, "error", refusal=_refusal_text(reply))
    record = reply.content.config_records.get(RECORD)
    try:
        if record is None:
            raise ValueError("no analysis record")
        partial, snapshot = record[PARTIAL_KEY], record[SNAPSHOT_KEY]
        disclosure = record.get(DISCLOSURE_KEY, "null")
        if not isinstance(partial, str) or not isinstance(snapshot, str) or not isinstance(disclosure, str):
            raise TypeError("analysis record fields are not text")
        return NodeAnswer(node_id, message_id, "replied", from_wire(partial), snapshot, from_wire(disclosure))
    except (KeyError, TypeError, ValueError):
        return NodeAnswer(node_id, message_id, "error", refusal="a reply without a readable partial")


def _named(node_ids: Sequence[int], names: Mapping[int, str]) -> str:
    shown = [names.get(node_id, f"flower-{node_id}") for node_id in node_ids[:_MAX_NAMED]]
    more = len(node_ids) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _ask(
    grid: Grid, task: AnalysisTask, request: Any, server_round: int, nodes: Sequence[int], timeout: float
) -> list[NodeAnswer]:
    scope = grid.job_id if isinstance(grid, MedfedGrid) else task.digest()
    task_wire = task.wire()
    messages = [_message(task_wire, request, server_round, node_id, scope) for node_id in nodes]
    replies = grid.send_and_receive(messages, timeout=timeout)
    by_message = {reply.metadata.reply_to_message_id: reply for reply in replies}
    return [_answer(message, by_message.get(message.metadata.message_id)) for message in messages]


def _check(answers: Sequence[NodeAnswer], server_round: int, names: Mapping[int, str], *, masked: bool = False) -> None:
    """Fail the job unless every node answered (naming the late and refusing nodes).

    ``masked``: the step collects secure-aggregation vectors, so a missing one fails the round itself.
    """
    late = [a.node_id for a in answers if a.outcome == "late"]
    refused = [a for a in answers if a.outcome == "error"]
    if refused:
        first = refused[0]
        others = f" (and {len(refused) - 1} other node(s) refused)" if len(refused) > 1 else ""
        raise ConflictError(
            detail=f"step {server_round}: node {_named([first.node_id], names)} refused: {first.refusal}{others}"
        )
    if late and masked:
        raise SecureAggregationError(
            detail=f"step {server_round}: no masked vector from {_named(late, names)} in time; the secure sum "
            "cannot be completed without every participant (the vectors sent cannot be unmasked without it)"
        )
    if late:
        raise ConflictError(
            detail=f"step {server_round}: {len(answers) - len(late)} of {len(answers)} nodes answered in time "
            f"(no answer from {_named(late, names)}); an analysis needs every selected node"
        )


def _with_hints(exc: MedfedError, server_round: int) -> MedfedError:
    """The same error, its detail spelling out its public hints (the job's error is all a researcher sees)."""
    detail = f"step {server_round}: {exc.detail or exc.public_message}"
    if exc.hints:
        detail += f" ({'; '.join(exc.hints)})"
    return type(exc)(exc.code, detail=detail, hints=exc.hints)


@dataclass(slots=True)
class _Steps:
    """Runs a job's steps: asks, checks, records snapshots and disclosures, tells the observer."""

    grid: Grid
    task: AnalysisTask
    spec: AnalysisSpec
    targets: list[int]
    observer: AnalysisObserver
    names: Mapping[int, str]
    snapshots: dict[int, str]
    disclosures: dict[int, Any]

    def run(self, server_round: int, request: Any, compute: Callable[[list[Any]], _T], *, masked: bool = False) -> _T:
        """One step: ``compute`` turns the partials (node order) into the step's outcome."""
        if self.observer.should_stop():
            raise StopRequestedError
        started = time.time()
        self.observer.round_started(server_round, deadline=started + self.spec.round_timeout_s)
        answers = _ask(self.grid, self.task, request, server_round, self.targets, self.spec.round_timeout_s)
        outcomes = [NodeOutcome(a.node_id, "train", a.message_id, a.outcome) for a in answers]
        try:
            _check(answers, server_round, self.names, masked=masked)
            for answer in answers:
                pinned = self.snapshots.setdefault(answer.node_id, answer.snapshot or "")
                if answer.snapshot != pinned:
                    raise ConflictError(
                        detail=f"step {server_round}: the data at node {_named([answer.node_id], self.names)} "
                        "changed during the job"
                    )
                self.disclosures[answer.node_id] = answer.disclosure
            try:
                outcome = compute([answer.partial for answer in answers])
            except MedfedError as exc:
                raise _with_hints(exc, server_round) from None
        except MedfedError:
            self.observer.round_finished(server_round, completed=False, outcomes=outcomes, started=started)
            raise
        self.observer.round_finished(server_round, completed=True, outcomes=outcomes, started=started)
        return outcome

    def document(self, outcome: BaseModel, rounds: int) -> dict[str, Any]:
        """The job's result document."""
        return {
            "analysis": self.task.analysis,
            "result": outcome.model_dump(mode="json"),
            "rounds": rounds,
            "nodes": {
                self.names.get(node_id, f"flower-{node_id}"): {
                    "status": "done",
                    "snapshot": self.snapshots[node_id],
                    "disclosure": self.disclosures.get(node_id),
                }
                for node_id in self.targets
            },
        }


def run_analysis(
    grid: Grid,
    spec: AnalysisSpec,
    *,
    nodes: Sequence[int],
    observer: AnalysisObserver,
    names: Mapping[int, str] | None = None,
    researcher: str | None = None,
) -> dict[str, Any]:
    """Run the spec's analysis over ``nodes`` (Flower ids) to its result; the job's result document.

    ``researcher`` is the job's submitter: nodes charge differential privacy to it.

    Raises :class:`~common.errors.ConflictError` when a node is late, refuses or changes its data, the
    analysis' own :class:`~common.errors.MedfedError` when it refuses the merged data,
    :class:`~common.privacy.secure_sum.SecureAggregationError` when a secure sum loses a participant, and
    :class:`~coordinator.federation.driver.StopRequestedError` when asked to stop between steps.
    """
    targets = sorted(nodes)
    if not targets:
        raise ConflictError(detail="no nodes selected for the analysis")
    job = grid.job_id if isinstance(grid, MedfedGrid) else None
    task = spec.task(researcher=researcher, job=job)
    steps = _Steps(grid, task, spec, targets, observer, names or {}, {}, {})
    if task.analysis == DISTINCT_COUNT:
        return _run_distinct(steps)
    if task.privacy is not None and task.privacy.secure_aggregation:
        return _run_secure(steps)
    definition = task.definition
    params = task.params
    if isinstance(definition, Iterative):
        state, request = definition.start(params)
    else:
        state, request = None, None
    for server_round in range(1, spec.max_rounds + 1):

        def compute(partials: list[Any], state: Any = state) -> tuple[Any, Any, bool]:
            if isinstance(definition, Iterative):
                next_state, outcome = definition.step(params, state, partials)
                return next_state, outcome, isinstance(outcome, definition.result)
            return None, definition.merge(params, partials), True

        state, outcome, done = steps.run(server_round, request, compute)
        if done:
            return steps.document(outcome, server_round)
        request = outcome
    raise ConflictError(detail=f"the analysis did not finish within {spec.max_rounds} steps (max_rounds)")


def _run_secure(steps: _Steps) -> dict[str, Any]:
    """A count analysis under secure aggregation: round keys (step 1), masked vectors (step 2)."""
    task, targets = steps.task, steps.targets
    if len(targets) < 2:
        raise ConflictError(detail="secure aggregation needs at least two nodes")
    keys = steps.run(1, SecureKeysRequest(), lambda partials: parse_partials(SecureKeysPartial, partials))
    participants = [str(node_id) for node_id in targets]
    max_total = sum(key.max_value for key in keys)
    secure_round = SecureSumRound(
        job_id=task.privacy.job if task.privacy is not None and task.privacy.job else task.digest(),
        round=2,
        attempt=1,
        length=vector_length(task.analysis, task.params),
        max_total=max_total,
        modulus_bits=modulus_bits_for(max_total),
        participants=tuple(sorted(participants)),
    )
    request = _mask_request(secure_round, participants, keys)
    min_cell = max(key.min_cell for key in keys)

    def finish(partials: list[Any]) -> BaseModel:
        totals = _sum_masked(secure_round, participants, partials)
        return result_from_totals(task.analysis, task.params, totals, min_cell=min_cell)

    result = steps.run(2, request, finish, masked=True)
    document = steps.document(result, 2)
    document["secure_aggregation"] = {
        "participants": len(participants),
        "modulus_bits": secure_round.modulus_bits,
        "max_total": secure_round.max_total,
        "suppression_min_cell": min_cell,
    }
    return document


def _mask_request(secure_round: SecureSumRound, participants: list[str], keys: list[Any]) -> SecureMaskRequest:
    """Step 2's request: the round's parameters and every participant's round key, in node order."""
    return SecureMaskRequest(
        round=secure_round.round,
        attempt=secure_round.attempt,
        length=secure_round.length,
        max_total=secure_round.max_total,
        modulus_bits=secure_round.modulus_bits,
        participants=list(secure_round.participants),
        public_keys={p: key.public_key for p, key in zip(participants, keys, strict=True)},
    )


def _sum_masked(secure_round: SecureSumRound, participants: list[str], partials: list[Any]) -> tuple[int, ...]:
    """The totals of the nodes' masked vectors (their masks cancel in the sum mod 2**k)."""
    masked = parse_partials(SecureMaskPartial, partials)
    vectors = [
        MaskedVector(p, m.round_digest, secure_round.modulus_bits, np.asarray(m.masked, dtype=np.uint64))
        for p, m in zip(participants, masked, strict=True)
    ]
    return aggregate(secure_round, vectors)


def _run_distinct(steps: _Steps) -> dict[str, Any]:
    """``distinct_count``: the nodes' job-salted bitmaps summed securely mod 2**32 (:mod:`common.analytics.distinct`).

    Step 1 collects the round keys and each node's minimum cell size, step 2 the masked bitmaps; the
    coordinator sees the union's bitmap only and releases the rounded (or suppressed) estimate.
    """
    task, targets = steps.task, steps.targets
    if len(targets) < 2:
        raise ConflictError(detail="a distinct count needs at least two nodes (it runs under secure aggregation)")
    params = parse_params(DistinctCountParams, task.params)
    keys = steps.run(1, SecureKeysRequest(), lambda partials: parse_partials(SecureKeysPartial, partials))
    participants = [str(node_id) for node_id in targets]
    secure_round = SecureSumRound(
        job_id=task.privacy.job if task.privacy is not None and task.privacy.job else task.digest(),
        round=2,
        attempt=1,
        length=params.buckets,
        max_total=BITMAP_MAX,
        modulus_bits=BITMAP_MAX.bit_length(),  # wraps: a bucket's sum says nothing of how many nodes set it
        participants=tuple(sorted(participants)),
    )
    request = _mask_request(secure_round, participants, keys)
    min_cell = max(key.min_cell for key in keys)

    def finish(partials: list[Any]) -> BaseModel:
        totals = _sum_masked(secure_round, participants, partials)
        return distinct_result(params, totals, nodes=len(participants), min_cell=min_cell)

    result = steps.run(2, request, finish, masked=True)
    document = steps.document(result, 2)
    document["secure_aggregation"] = {
        "participants": len(participants),
        "modulus_bits": secure_round.modulus_bits,
        "buckets": params.buckets,
        "suppression_min_cell": min_cell,
    }
    return document
