"""The node-side runner of federated messages: installed ClientApps, kept warm, one Context per job.

A node never runs code that arrives over the network: a job names an app installed with the node, and
the host refuses any other. The apps are built once when the node starts (torch and flwr are imported
once per process, and :meth:`ClientAppHost.warm_up` pays torch's lazy first-use cost up front), then
called in-process for every message.

:meth:`ClientAppHost.handle` turns one serialised instruction into one serialised reply:

* bytes that are not a Flower message raise :class:`~common.errors.InputError` (``invalid_request``):
  there is nothing to reply to;
* every other refusal is an **error reply** (a Flower ``Error`` with a
  :class:`~common.flower.ReplyErrorCode` and a fixed public sentence), so the coordinator learns at once
  instead of waiting for its timeout: ``INVALID_MESSAGE`` (Flower's validator rejects it),
  ``WRONG_RECIPIENT`` (another node's message, or a run id that is not this job's), ``MESSAGE_TYPE_REFUSED``
  (the job's signed spec does not allow the type), ``UNKNOWN_APP`` (no such installed app),
  ``APP_FAILED`` (the app raised; the exception type is logged here, nothing of it leaves the node).

:meth:`ClientAppHost.refuse` answers a message the node's policy does not let run (refused, or waiting
for a person): after the same validity and recipient checks, an error reply whose reason is a catalog
code with location-only hints (:func:`common.analytics.task.encode_refusal`), under the refusal code
the job's coordinator side reads (``ANALYSIS_ERROR_CODE`` for ``analysis``, ``LEARNING_ERROR_CODE`` for
the learning apps, :data:`POLICY_ERROR_CODE` otherwise). The app is never called.

Thread safety: messages of different jobs run concurrently; messages of one job at this node run one at
a time, so an app may read and write its ``context.state`` without locks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flwr.app import Context, Error, Message, RecordDict, UserConfig
from flwr.clientapp import ClientApp

from common.analytics.task import ANALYSIS_ERROR_CODE, encode_refusal
from common.errors import ErrorCode, MedfedError
from common.flower import (
    ReplyErrorCode,
    assign_message_id,
    error_reply,
    flower_run_id,
    instruction_problems,
    is_reserved_node_id,
    message_from_bytes,
    message_to_bytes,
)
from common.models.task import LEARNING_ERROR_CODE

__all__ = ["POLICY_ERROR_CODE", "ClientAppHost", "InstalledApp", "MessageRefusal"]

_log = logging.getLogger(__name__)

POLICY_ERROR_CODE = 112
"""Flower error code of a job the node's policy does not let run, for apps without a refusal code of
their own (clear of Flower's 0-8, medfed's 100-104, analysis 110 and learning 111)."""
_REFUSAL_CODES = {"analysis": ANALYSIS_ERROR_CODE, "learning": LEARNING_ERROR_CODE, "fedavg_mlp": LEARNING_ERROR_CODE}


@dataclass(frozen=True, slots=True)
class MessageRefusal:
    """Why the node's checks refuse one message before its app reads it: a catalog code and location hints."""

    code: ErrorCode
    hints: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InstalledApp:
    """A ClientApp installed with the node, and what to run once to make its first message fast.

    ``background``: the app's work is long and CPU-bound (training), so the channel runs it on
    low-priority threads and a query arriving meanwhile is not kept waiting for the CPU.
    """

    app: ClientApp
    warm_up: Callable[[], None] | None = None
    background: bool = False


@dataclass(slots=True)
class _JobContext:
    context: Context
    lock: threading.Lock = field(default_factory=threading.Lock)


class ClientAppHost:
    """Runs the node's installed ClientApps for federated jobs; one instance per node process."""

    def __init__(
        self,
        *,
        node_id: int,
        apps: Mapping[str, InstalledApp],
        node_config: UserConfig | None = None,
    ) -> None:
        if is_reserved_node_id(node_id):
            raise ValueError("node_id is reserved by Flower or out of range; derive it with flower_node_id()")
        self._node_id = node_id
        self._apps = dict(apps)
        self._node_config: UserConfig = dict(node_config or {})
        self._jobs: dict[str, _JobContext] = {}
        self._lock = threading.Lock()
        self._warm = False

    @property
    def node_id(self) -> int:
        """This node's Flower node id."""
        return self._node_id

    @property
    def installed(self) -> frozenset[str]:
        """Names of the installed apps."""
        return frozenset(self._apps)

    def is_background(self, app: str) -> bool:
        """Whether ``app`` is installed and does long CPU-bound work (see :class:`InstalledApp`)."""
        installed = self._apps.get(app)
        return installed is not None and installed.background

    def warm_up(self) -> None:
        """Run every app's warm-up once per host (later calls do nothing)."""
        with self._lock:
            if self._warm:
                return
            for installed in self._apps.values():
                if installed.warm_up is not None:
                    installed.warm_up()
            self._warm = True

    def context(self, job_id: str) -> Context:
        """The job's Context at this node (created on first use); its ``state`` lasts until :meth:`close_job`."""
        return self._job(job_id).context

    def close_job(self, job_id: str) -> None:
        """Forget the job's Context (call when the job ends); unknown jobs are ignored."""
        with self._lock:
            self._jobs.pop(job_id, None)

    def handle(
        self,
        payload: bytes,
        *,
        job_id: str,
        app: str,
        allowed_message_types: frozenset[str],
        binding: Callable[[Message], MessageRefusal | None] | None = None,
    ) -> bytes:
        """Run one instruction of job ``job_id`` through installed app ``app``; return the serialised reply.

        ``app`` and ``allowed_message_types`` come from the job's signed spec, which the node has verified;
        the message itself chooses nothing but its type, which must be in ``allowed_message_types``.
        ``binding`` (when given) says why a valid message must not run — it leaves the signed spec, or names a
        revoked node — as a catalog code and location hints; then it is refused with them.
        """
        message = message_from_bytes(payload)
        started = time.perf_counter()
        reply, outcome = self._reply(
            message, job_id=job_id, app=app, allowed_message_types=allowed_message_types, binding=binding
        )
        _log.info(
            "handled a %s message for app %s: %s in %.3f s",
            message.metadata.message_type,
            app if app in self._apps else "(unknown)",
            outcome,
            time.perf_counter() - started,
        )
        return message_to_bytes(reply)

    def refuse(self, payload: bytes, *, job_id: str, app: str, code: ErrorCode, hints: tuple[str, ...] = ()) -> bytes:
        """The serialised error reply to an instruction of job ``job_id`` that the node will not run.

        ``code`` and ``hints`` are public (a catalog code, rule paths); an invalid or misaddressed message
        gets the same answer as :meth:`handle` gives it. InputError when ``payload`` is not a message.
        """
        message = message_from_bytes(payload)
        if instruction_problems(message):
            reply = error_reply(message, ReplyErrorCode.INVALID_MESSAGE)
        elif message.metadata.dst_node_id != self._node_id or message.metadata.run_id != flower_run_id(job_id):
            reply = error_reply(message, ReplyErrorCode.WRONG_RECIPIENT)
        else:
            reply = _refusal(message, app, code, hints)
        _log.info("answered a %s message without running it: %s", message.metadata.message_type, code)
        return message_to_bytes(reply)

    def _job(self, job_id: str) -> _JobContext:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                context = Context(
                    run_id=flower_run_id(job_id),
                    node_id=self._node_id,
                    node_config=dict(self._node_config),
                    state=RecordDict(),
                    run_config={},
                )
                job = self._jobs[job_id] = _JobContext(context)
            return job

    def _reply(
        self,
        message: Message,
        *,
        job_id: str,
        app: str,
        allowed_message_types: frozenset[str],
        binding: Callable[[Message], MessageRefusal | None] | None,
    ) -> tuple[Message, str]:
        """The reply to ``message`` and a short outcome word for the log."""
        if instruction_problems(message):
            return error_reply(message, ReplyErrorCode.INVALID_MESSAGE), "invalid"
        metadata = message.metadata
        if metadata.dst_node_id != self._node_id or metadata.run_id != flower_run_id(job_id):
            return error_reply(message, ReplyErrorCode.WRONG_RECIPIENT), "wrong recipient"
        if metadata.message_type not in allowed_message_types:
            return error_reply(message, ReplyErrorCode.MESSAGE_TYPE_REFUSED), "type refused"
        installed = self._apps.get(app)
        if installed is None:
            return error_reply(message, ReplyErrorCode.UNKNOWN_APP), "unknown app"
        refused = binding(message) if binding is not None else None
        if refused is not None:
            return _refusal(message, app, refused.code, refused.hints), f"refused ({refused.code})"
        job = self._job(job_id)
        try:
            with job.lock:
                reply = installed.app(message, job.context)
        except Exception as exc:
            # The message of an app's exception can quote data values: log its type only.
            _log.warning("app %s raised %s", app, type(exc).__name__)
            return error_reply(message, ReplyErrorCode.APP_FAILED), "app failed"
        if reply.metadata.reply_to_message_id != metadata.message_id or not reply.metadata.message_id:
            _log.warning("app %s returned something other than a reply to its message", app)
            return error_reply(message, ReplyErrorCode.APP_FAILED), "app failed"
        return reply, "error reply" if reply.has_error() else "ok"


def _refusal(message: Message, app: str, code: ErrorCode, hints: tuple[str, ...]) -> Message:
    """The error reply that refuses ``message`` with a catalog code, under the app's refusal code."""
    reason = encode_refusal(MedfedError(code, hints=hints))
    reply = Message(Error(code=_REFUSAL_CODES.get(app, POLICY_ERROR_CODE), reason=reason), reply_to=message)
    assign_message_id(reply)
    return reply
