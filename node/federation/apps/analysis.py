"""The built-in ``analysis`` app: one step of a :mod:`common.analytics` analysis at this node.

A ``query`` carries the job's task and the step's request (wire format: :mod:`common.analytics.task`).
The app

1. parses the task strictly (the node never trusts the coordinator's parsing) and refuses a task that
   differs from the one this job started with;
2. **pins the data** on the job's first message: loads the source, and every source the cohort joins
   with, once (``load_source``: :mod:`node.federation.sources`), keeps the frames in a per-job cache and
   the snapshot id in the job's ``context.state``; every later step of the job reads the same frames, so
   an iterative GLM or Cox never sees data change between iterations. Should the cache have let the
   frames go (a long-idle job, more concurrent jobs than it holds), they are loaded again and the job
   is refused if the snapshot id differs;
3. projects the source to the task's ``columns``, applies the cohort, and calls the analysis' node
   side (``partial`` or ``answer``);
4. hands the partial to the **release step** (``release``: the node's disclosure policy) and replies
   with the released partial, the snapshot id and the release's disclosure metadata.

Before the first answer of a job the release step **admits** it (``Release.admit``): a job asking for
differential privacy reserves its epsilon in the node's ledger there, and a refusal
(``privacy_budget_exceeded``) is the job's first and only reply. A job with ``secure_aggregation``
takes two steps (:mod:`common.analytics.secure`): the first answers a fresh X25519 round key (kept
with the job's pin, used once), the second the node's vector under the release's rules, masked for the
round's participants; the coordinator sees only the sum.
A ``distinct_count`` job always takes those two steps, with the job-salted bitmap of the cohort's
persons as the vector (``persons``: :mod:`node.federation.apps.distinct`).

A refusal (bad task, unknown source or column, a value outside the declared bounds, a design the node
must not answer, a policy that cannot release the analysis) is a Flower error reply with code
``ANALYSIS_ERROR_CODE`` and a catalog code with location-only hints; the detail stays in this node's
log. Any other exception is the host's ``APP_FAILED``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import pandas as pd
from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp

from common.analytics.cohort import Source, apply_cohort, cohort_sources
from common.analytics.distinct import DISTINCT_COUNT
from common.analytics.params import parse_request
from common.analytics.registry import Iterative
from common.analytics.secure import SecureKeysPartial, SecureMaskPartial, SecureMaskRequest
from common.analytics.task import (
    ANALYSIS_ERROR_CODE,
    DISCLOSURE_KEY,
    PARTIAL_KEY,
    RECORD,
    REQUEST_KEY,
    SNAPSHOT_KEY,
    TASK_KEY,
    AnalysisTask,
    encode_refusal,
    from_wire,
    parse_task,
    to_wire,
)
from common.crypto import SealPublicKey
from common.errors import ConflictError, ErrorCode, InputError, MedfedError
from common.flower import assign_message_id, make_reply
from common.privacy.secure_sum import SecureAggregationError, SecureSumParticipant, SecureSumRound
from node.federation.sources import LoadedSource, SourceLoader

__all__ = [
    "PIN_KEY",
    "PersonSketch",
    "PinCache",
    "Pinned",
    "Release",
    "ReleaseStep",
    "Released",
    "SecureVector",
    "analysis_app",
]

_log = logging.getLogger(__name__)

PIN_KEY: Final[str] = "medfed.analysis.pin"
"""The ConfigRecord in a job's ``context.state`` that names its task digest and pinned snapshot."""


@dataclass(frozen=True, slots=True)
class Released:
    """What leaves the node: the partial after the disclosure rules, and the rules applied."""

    partial: dict[str, Any]
    disclosure: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReleaseStep:
    """One step as the release step sees it.

    ``rows`` are the cohort's rows (their index names the records, for record-keyed noise);
    ``partial`` the analysis' partial (None when the release computes a secure-aggregation vector);
    ``source_rows`` the number of rows of the pinned source (for declared maxima, never the cohort's);
    ``admission`` what :meth:`Release.admit` returned at the job's first step (None if not kept).
    """

    task: AnalysisTask
    rows: pd.DataFrame
    snapshot: str
    source_rows: int
    request: Any = None
    partial: dict[str, Any] | None = None
    admission: Any = None


@dataclass(frozen=True, slots=True)
class SecureVector:
    """A node's vector for secure aggregation (layout: :mod:`common.analytics.secure`), already
    perturbed under its rules, with its declared maximum entry, its minimum cell size and its metadata."""

    values: list[int]
    max_value: int
    min_cell: int
    disclosure: dict[str, Any]


PersonSketch = Callable[[ReleaseStep], SecureVector]
"""A ``distinct_count`` job's vector at this node: its cohort's persons' bitmap, with what it declares."""


class Release(Protocol):
    """The node's disclosure policy applied to a job: admission, then each step's release.

    Every method refuses with a MedfedError (a catalog code and location-only hints) what the policy
    cannot release.
    """

    def admit(self, task: AnalysisTask, snapshot: str) -> Any:
        """Before a job's first answer: reserve what it spends (epsilon); an admission record or None."""
        ...

    def release(self, step: ReleaseStep) -> Released:
        """The partial of one step as it may leave the node."""
        ...

    def secure_vector(self, step: ReleaseStep) -> SecureVector:
        """The step's integer vector for secure aggregation, perturbed as the policy says."""
        ...


@dataclass(slots=True)
class Pinned:
    """One job's pinned data: its task digest, snapshot id and frames by source key; when last used.

    ``admission``: what the release step's admission returned; ``secure``: the job's secure-aggregation
    round key and vector between its two steps; ``rows``: the cohort's rows, selected once (the same
    frame object every step, so an analysis may keep per-frame work such as a GLM's design matrix).
    """

    task_digest: str
    snapshot: str
    frames: dict[str, pd.DataFrame]
    used_at: float
    admission: Any = None
    secure: tuple[SecureSumParticipant, SecureVector] | None = None
    rows: pd.DataFrame | None = None


class PinCache:
    """Frames pinned per job (by Flower run id): at most ``max_jobs``, each dropped after ``idle_s`` unused.

    Thread-safe. A job whose frames were dropped reloads them and must find the same snapshot.
    """

    def __init__(
        self, *, max_jobs: int = 8, idle_s: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_jobs = max_jobs
        self._idle_s = idle_s
        self._clock = clock
        self._pins: OrderedDict[int, Pinned] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_id: int) -> Pinned | None:
        """The job's pin, if still held (and mark it used)."""
        now = self._clock()
        with self._lock:
            for stale in [key for key, pin in self._pins.items() if now - pin.used_at > self._idle_s]:
                del self._pins[stale]
            pin = self._pins.get(run_id)
            if pin is not None:
                pin.used_at = now
                self._pins.move_to_end(run_id)
            return pin

    def put(self, run_id: int, pin: Pinned) -> None:
        """Hold the job's pin, dropping the least recently used beyond ``max_jobs``."""
        with self._lock:
            pin.used_at = self._clock()
            self._pins[run_id] = pin
            self._pins.move_to_end(run_id)
            while len(self._pins) > self._max_jobs:
                self._pins.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pins)


def _combined_snapshot(snapshots: Mapping[str, str], main: str) -> str:
    """The main source's id alone, or a digest over every source's id when the cohort joins others."""
    if len(snapshots) == 1:
        return snapshots[main]
    text = "\n".join(f"{key}={snapshots[key]}" for key in sorted(snapshots))
    return hashlib.sha256(text.encode()).hexdigest()


def _project(frame: pd.DataFrame, columns: tuple[str, ...] | None) -> pd.DataFrame:
    if columns is None:
        return frame
    missing = [f"columns[{index}]: no such column" for index, name in enumerate(columns) if name not in frame.columns]
    if missing:
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="task names unknown columns", hints=missing[:8])
    return frame.loc[:, list(columns)]


def _load(task: AnalysisTask, load_source: SourceLoader) -> Pinned:
    cohort = task.parsed_cohort()
    sources: list[Source] = [task.source, *([] if cohort is None else cohort_sources(cohort))]
    loaded: dict[str, LoadedSource] = {}
    for source in sources:
        if source.key not in loaded:
            loaded[source.key] = load_source(source)
    frames = {key: item.frame for key, item in loaded.items()}
    frames[task.source.key] = _project(frames[task.source.key], task.columns)
    snapshot = _combined_snapshot({key: item.snapshot for key, item in loaded.items()}, task.source.key)
    return Pinned(task.digest(), snapshot, frames, time.monotonic())


def _pin(task: AnalysisTask, context: Context, cache: PinCache, load_source: SourceLoader, release: Release) -> Pinned:
    """The job's pinned frames: from the cache, else loaded (first step: admitted) or reloaded (must match)."""
    state = context.state.config_records.get(PIN_KEY)
    if state is not None and state.get("task") != task.digest():
        raise InputError(
            ErrorCode.INVALID_ANALYSIS, detail="task changed within a job", hints=["task: differs from step 1"]
        )
    pinned = cache.get(context.run_id)
    if pinned is None:
        pinned = _load(task, load_source)
        if state is not None and state.get("snapshot") != pinned.snapshot:
            raise ConflictError(detail="the data changed during the job", hints=["source: changed since step 1"])
        cache.put(context.run_id, pinned)
    if state is None:
        pinned.admission = release.admit(task, pinned.snapshot)
        context.state[PIN_KEY] = ConfigRecord({"task": pinned.task_digest, "snapshot": pinned.snapshot})
    return pinned


def _refusal(message: Message, error: MedfedError) -> Message:
    reply = Message(Error(code=ANALYSIS_ERROR_CODE, reason=encode_refusal(error)), reply_to=message)
    assign_message_id(reply)
    return reply


def _step(
    message: Message,
    context: Context,
    cache: PinCache,
    load_source: SourceLoader,
    release: Release,
    persons: PersonSketch | None = None,
) -> Message:
    record = message.content.config_records.get(RECORD)
    if record is None or not isinstance(record.get(TASK_KEY), str) or not isinstance(record.get(REQUEST_KEY), str):
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="query without an analysis task", hints=[f"{RECORD}"])
    try:
        raw_task, request = from_wire(str(record[TASK_KEY])), from_wire(str(record[REQUEST_KEY]))
    except ValueError:
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="task or request is not JSON", hints=["task"]) from None
    task = parse_task(raw_task)
    pinned = _pin(task, context, cache, load_source, release)
    if pinned.rows is None:
        pinned.rows = apply_cohort(task.parsed_cohort(), pinned.frames[task.source.key], pinned.frames)
    rows = pinned.rows
    step = ReleaseStep(
        task, rows, pinned.snapshot, len(pinned.frames[task.source.key]), request, None, pinned.admission
    )
    if task.analysis == DISTINCT_COUNT or (task.privacy is not None and task.privacy.secure_aggregation):
        released = _secure_step(step, pinned, release, context.node_id, persons)
    else:
        definition = task.definition
        params = task.parsed_params()
        if isinstance(definition, Iterative):
            if not isinstance(request, dict):
                raise InputError(
                    ErrorCode.INVALID_ANALYSIS, detail="iterative step without a request", hints=["request"]
                )
            partial = definition.answer(rows, params, request)
        else:
            partial = definition.partial(rows, params)
        released = release.release(
            ReleaseStep(task, rows, step.snapshot, step.source_rows, request, partial, step.admission)
        )
    content = ConfigRecord(
        {
            PARTIAL_KEY: to_wire(released.partial),
            SNAPSHOT_KEY: pinned.snapshot,
            DISCLOSURE_KEY: to_wire(released.disclosure),
        }
    )
    return make_reply(message, RecordDict({RECORD: content}))


def _secure_step(
    step: ReleaseStep, pinned: Pinned, release: Release, node_id: int, persons: PersonSketch | None = None
) -> Released:
    """A step of a secure-aggregation job: the round key (step 1), or the masked vector (step 2).

    A ``distinct_count`` job's vector is its persons' bitmap from ``persons`` (refused without it).
    """
    stage = step.request.get("secure_aggregation") if isinstance(step.request, dict) else None
    me = str(node_id)
    if stage == "keys":
        if step.task.analysis != DISTINCT_COUNT:
            vector = release.secure_vector(step)
        elif persons is None:
            raise InputError(
                ErrorCode.INVALID_ANALYSIS,
                detail="no distinct counts at this node",
                hints=["analysis: this node offers no distinct_count (no store or linkage key bound)"],
            )
        else:
            vector = persons(step)
        participant = SecureSumParticipant(me)
        pinned.secure = (participant, vector)
        keys = SecureKeysPartial(
            public_key=participant.public_key.to_text(),
            max_value=vector.max_value,
            min_cell=vector.min_cell,
            method=str(vector.disclosure.get("method", "none")),
        )
        return Released(keys.model_dump(mode="json"), vector.disclosure)
    if stage != "mask":
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="secure-aggregation step unknown", hints=["request"])
    request = parse_request(SecureMaskRequest, step.request)
    if pinned.secure is None:
        raise SecureAggregationError(
            detail="no round key for this job at this node",
            hints=["secure_aggregation: the node holds no round key for this job (a round key is used once)"],
        )
    participant, vector = pinned.secure
    pinned.secure = None  # a round key masks one vector, never two
    privacy = step.task.privacy
    secure_round = SecureSumRound(
        job_id=(privacy.job if privacy is not None and privacy.job else step.task.digest()),
        round=request.round,
        attempt=request.attempt,
        length=request.length,
        max_total=request.max_total,
        modulus_bits=request.modulus_bits,
        participants=tuple(request.participants),
    )
    if request.length != len(vector.values) or request.max_total < vector.max_value:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS,
            detail="secure round does not fit this node's vector",
            hints=["secure_aggregation: round length or declared maximum"],
        )
    try:
        peers = {p: SealPublicKey.from_text(key) for p, key in request.public_keys.items() if p != me}
    except InputError:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS, detail="unreadable round key", hints=["public_keys: not X25519 keys"]
        ) from None
    masked = participant.mask(vector.values, secure_round, peers)
    answer = SecureMaskPartial(round_digest=masked.round_digest, masked=[int(v) for v in masked.values])
    return Released(answer.model_dump(mode="json"), vector.disclosure)


def analysis_app(
    load_source: SourceLoader, release: Release, *, cache: PinCache | None = None, persons: PersonSketch | None = None
) -> ClientApp:
    """A ClientApp whose ``query`` runs one analysis step over ``load_source``'s data through ``release``.

    ``persons`` makes a ``distinct_count`` job's bitmap (:mod:`node.federation.apps.distinct`); without
    it the node refuses such jobs.
    """
    app = ClientApp()
    pins = cache if cache is not None else PinCache()

    @app.query()
    def query(message: Message, context: Context) -> Message:
        try:
            return _step(message, context, pins, load_source, release, persons)
        except MedfedError as exc:
            # The code only: a detail can name a source or column, and the node log stays value-free.
            _log.info("analysis step refused: %s", exc.code)
            return _refusal(message, exc)

    return app
