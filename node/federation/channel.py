"""The node's end of the channel: one long-poll to the coordinator, replies, heartbeats, reconnects.

The node only dials out. A poll thread keeps one long-poll open; each message it brings is handled on
a small worker pool by the warm :class:`~node.federation.host.ClientAppHost` — messages of background
apps (training) on a second pool whose threads run at a lower OS priority, so a count query is
neither queued behind a training round nor kept off the CPU by it — and the reply is kept in the
node's database *before* it is sent: a message delivered again (after a reconnect, a lost reply, a
node restart) is answered from that record and never executed twice. Messages are acknowledged on
the next poll; the first poll after (re)connecting says ``hello``, and the coordinator re-sends what
was delivered but never acknowledged.

Replies ride on the next poll when they are ready soon: after dispatching what a poll brought, the poll
thread waits up to ``reply_linger_s`` for the replies of the foreground messages among it and sends
them with the acknowledgements, so a count query costs one signed request instead of two. A reply that
is later than that (or larger than :data:`RIDING_REPLY_BYTES`), and every reply of a background app, is
posted on its own as soon as it is ready; the linger never holds up a training round's reply.

Before a job's first message runs, the node's policy decides on the job
(:class:`~node.policy.admission.JobAdmissions`, once per job; :func:`~node.federation.service.start_federation`
always passes it — a runner built without one, as the channel's own tests do, runs what is installed):

- refused: every message of the job is answered with an error reply naming the catalog code and the
  rule (:meth:`~node.federation.host.ClientAppHost.refuse`), kept like any reply; the app never runs;
- waiting for a person: the message is *held* in memory, not answered. A timer asks the approval queue
  every ``approval_check_s``; once a person approves, the held messages run as if they had just come
  (and are answered, and kept); once rejected or timed out, they are answered with that refusal. A held
  message whose deadline (``deadline_at`` in the envelope, the coordinator's round deadline) passes is
  dropped unanswered: its job has given up on it, so an approval that comes later does not run it. On
  :meth:`ChannelRunner.stop`, messages still held are answered ``job_pending_approval``, so the
  coordinator learns why rather than waiting out its deadline. Held messages do not survive a restart
  (they were acknowledged); the job fails by its deadline, and its approval stays in the queue.

Revocation lists come with poll answers that carry messages and with heartbeat answers (``revocations``);
each is handed to the admissions' :class:`~node.trust.JobTrust` *before* the messages it came with are
dispatched, which keeps it only if the pinned network-admin key signed it and it is not older than the
list held, so a revocation reaches the very next message of a running job. A message of a secure round that
names a node on that list among its participants is refused ``node_revoked`` before its app reads it
(:mod:`node.federation.participants`): the node masks for no round a revoked node takes part in.

Failures to reach the coordinator back off with jittered exponential delays (tenacity's
``wait_random_exponential``) and never end the loop; waiting is on the stop event, so ``stop()`` is
prompt. A poll the coordinator refuses for good (a 4xx other than 401) sends the replies it carried on
their own and is asked again after :data:`REFUSED_POLL_PAUSE_S`. Logs carry counts, codes and
durations — never message contents or identifiers.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from flwr.app import Message
from sqlalchemy.engine import Engine
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from common.errors import ErrorCode, InputError, MedfedError
from common.models import model_names
from node.federation.binding import message_problems
from node.federation.host import ClientAppHost, MessageRefusal
from node.federation.participants import round_participants
from node.policy.admission import Admission, JobAdmissions, Verdict
from node.store.federation import get_reply, keep_reply

__all__ = ["ChannelRunner", "CoordinatorLink"]

log = logging.getLogger("medfed.node.channel")


class CoordinatorLink(Protocol):
    """What the channel needs of the authenticated, pinned HTTPS client."""

    def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST a JSON body, return the parsed JSON answer; MedfedError on failure."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


BACKGROUND_NICENESS = 10
REPLY_LINGER_S = 0.25
"""How long the poll thread waits for the replies of the quick messages a poll brought, to send them with
the next poll (a message delivered meanwhile waits at most this long)."""
RIDING_REPLY_BYTES = 256 * 1024
"""A larger reply is posted on its own, so one poll's body stays small."""
REFUSED_POLL_PAUSE_S = 1.0
"""After the coordinator refused a poll for good (not a failure to reach it, which backs off), the next
poll waits this long rather than asking again at once."""


class _ReplySlot:
    """Where a handler leaves its reply for the next poll to carry — unless the poll left without it.

    The poll thread collects the slot once, after at most its linger; a handler that offers its reply
    later is told to post it itself. :meth:`finish` says the handler is done (with or without a reply),
    so the poll thread does not wait out its linger for a held message.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._reply: dict[str, str] | None = None
        self._collected = False

    def offer(self, message_id: str, reply: bytes) -> bool:
        """Leave the reply for the poll; False: the poll has gone, post it yourself."""
        with self._lock:
            if self._collected or len(reply) > RIDING_REPLY_BYTES:
                return False
            self._reply = _reply_body(message_id, reply)
        self._done.set()
        return True

    def finish(self) -> None:
        """The handler is done."""
        self._done.set()

    def collect(self, deadline: float) -> dict[str, str] | None:
        """The reply, when it is ready by ``deadline`` (a ``time.monotonic()`` value); the slot closes."""
        self._done.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._collected = True
            return self._reply


def _reply_body(message_id: str, reply: bytes) -> dict[str, str]:
    return {"message_id": message_id, "payload": base64.b64encode(reply).decode()}


def _lower_thread_priority() -> None:
    """Run the calling thread at a lower OS priority (Linux schedules threads one by one; elsewhere a no-op)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except (AttributeError, OSError):  # pragma: no cover - platforms without per-thread priorities
        log.info("background threads run at normal priority on this platform")


def _round_allowed(server_round: object, rounds: object) -> bool:
    """A message may name no round, or a round from 1 to the job's number of rounds."""
    if server_round is None:
        return True
    if not isinstance(server_round, int) or server_round < 1:
        return False
    return not isinstance(rounds, int) or server_round <= rounds


class ChannelRunner:
    """Poll, handle, reply and heartbeat in background threads until :meth:`stop`."""

    def __init__(
        self,
        link: CoordinatorLink,
        host: ClientAppHost,
        engine: Engine,
        *,
        version: str,
        poll_wait_s: float = 20.0,
        heartbeat_s: float = 10.0,
        workers: int = 4,
        clock: Callable[[], float] = time.time,
        admissions: JobAdmissions | None = None,
        approval_check_s: float = 1.0,
        reply_linger_s: float = REPLY_LINGER_S,
    ) -> None:
        self._link = link
        self._reply_linger_s = reply_linger_s
        self._admissions = admissions
        self._approval_check_s = approval_check_s
        self._held: dict[str, dict[str, dict[str, Any]]] = {}  # job id -> message id -> envelope
        self._held_lock = threading.Lock()
        self._host = host
        self._engine = engine
        self._version = version
        self._poll_wait_s = poll_wait_s
        self._heartbeat_s = heartbeat_s
        self._clock = clock
        self._stop = threading.Event()
        self._acks: list[str] = []
        self._acks_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medfed-channel")
        self._background_pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="medfed-channel-background", initializer=_lower_thread_priority
        )
        self._threads = [
            threading.Thread(target=self._poll_loop, name="medfed-channel-poll", daemon=True),
            threading.Thread(target=self._heartbeat_loop, name="medfed-channel-heartbeat", daemon=True),
            threading.Thread(target=self._approval_loop, name="medfed-channel-approvals", daemon=True),
        ]
        self.connected = threading.Event()  # set once the first poll has reached the coordinator

    def start(self) -> None:
        """Start polling and heartbeating."""
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loops; messages being handled finish first (their replies are kept, sent next time)."""
        self._stop.set()
        self._answer_held_as_pending()
        self._pool.shutdown(wait=True)
        self._background_pool.shutdown(wait=True)
        # A long-poll in flight cannot be interrupted from here (httpx has no cancel for a blocking
        # read): stopping waits it out, at most ``poll_wait_s``. What it brings after the stop is not
        # acknowledged, so the coordinator delivers it again on the next connect.
        for thread in self._threads:
            thread.join(timeout)
        self._link.close()

    def held_messages(self) -> dict[str, int]:
        """How many messages each job waiting for a person's approval has held at this node."""
        with self._held_lock:
            return {job_id: len(held) for job_id, held in self._held.items()}

    # ------------------------------------------------------------------ loops

    def _retryable(self, exc: BaseException) -> bool:
        # 5xx (the coordinator unreachable or failing) and 401 (e.g. our clock is off) are retried;
        # other 4xx answers are final for this request.
        return isinstance(exc, MedfedError) and (exc.status >= 500 or exc.status == 401)

    def _post(self, path: str, body: dict[str, Any], *, on_retry: Callable[[], None] | None = None) -> Any:
        """POST until it succeeds, a final answer comes, or the runner stops (then the error is raised)."""

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            code = str(error.code) if isinstance(error, MedfedError) else "unknown"
            log.warning("coordinator request failed; retrying", extra={"fields": {"path": path, "code": code}})
            if on_retry is not None:
                on_retry()

        retrying = Retrying(
            wait=wait_random_exponential(multiplier=0.25, max=30),
            retry=retry_if_exception(self._retryable),
            stop=lambda _state: self._stop.is_set(),
            sleep=self._pause,  # backing off ends at once when the runner stops
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._link.post_json, path, body)

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            body = {
                "version": self._version,
                "capabilities": {"apps": sorted(self._host.installed), "models": model_names()},
                "node_time": self._clock(),
            }
            try:
                answer = self._post("/channel/v1/heartbeat", body)
            except MedfedError:
                continue
            self._take_revocations(answer)
            self._stop.wait(self._heartbeat_s)

    def _take_revocations(self, answer: object) -> None:
        """Hand a revocation list that came with an answer to the node's signed-job checks."""
        if self._admissions is not None and isinstance(answer, dict) and answer.get("revocations") is not None:
            self._admissions.trust.accept_revocations(answer["revocations"])

    def _poll_loop(self) -> None:
        # The first poll after (re)connecting does not wait: it collects what queued up meanwhile and
        # tells both sides at once that the channel is up.
        body: dict[str, Any] = {"acks": [], "wait_s": 0.0, "hello": True}
        while not self._stop.is_set():
            with self._acks_lock:
                body["acks"] = body["acks"] + self._acks
                self._acks = []
            try:
                answer = self._post(
                    "/channel/v1/poll", body, on_retry=functools.partial(body.update, hello=True, wait_s=0.0)
                )
            except MedfedError:
                if self._stop.is_set():
                    break  # what the body carried is kept here and delivered again on the next connect
                # A final refusal of this poll (a body the coordinator will not take, say): its replies go on
                # their own, so they are neither lost nor holding up the polls after it.
                for reply in body.pop("replies", []):
                    self._post_reply(reply)
                self._pause(REFUSED_POLL_PAUSE_S)
                continue
            body = {"acks": [], "wait_s": self._poll_wait_s, "hello": False}
            if self._stop.is_set():
                break  # unacknowledged, so the coordinator sends these again on the next connect
            self.connected.set()
            self._take_revocations(answer)
            envelopes = answer.get("messages", []) if isinstance(answer, dict) else []
            slots: list[_ReplySlot] = []
            for envelope in envelopes:
                if isinstance(envelope, dict) and isinstance(envelope.get("id"), str):
                    with self._acks_lock:
                        self._acks.append(envelope["id"])
                    slot = self._dispatch(envelope, riding=True)
                    if slot is not None:
                        slots.append(slot)
            deadline = time.monotonic() + self._reply_linger_s
            replies = [reply for slot in slots if (reply := slot.collect(deadline)) is not None]
            if replies:
                body["replies"] = replies

    def _dispatch(self, envelope: dict[str, Any], *, riding: bool = False) -> _ReplySlot | None:
        """Hand the message to a pool; with ``riding``, a foreground message's reply may come back in the slot
        returned for the next poll to carry."""
        if self._host.is_background(str(envelope.get("app"))):
            self._background_pool.submit(self._handle, envelope, None)
            return None
        slot = _ReplySlot() if riding else None
        self._pool.submit(self._handle, envelope, slot)
        return slot

    def _approval_loop(self) -> None:
        """Release held messages whose job a person approved, rejected, or let time out; drop overdue ones."""
        while not self._stop.wait(self._approval_check_s):
            with self._held_lock:
                waiting = list(self._held)
            for job_id in waiting:
                try:
                    self._recheck(job_id)
                except Exception as exc:  # the store unavailable for a moment: the next tick asks again
                    log.warning("approval check failed", extra={"fields": {"error": type(exc).__name__}})

    def _recheck(self, job_id: str) -> None:
        assert self._admissions is not None  # messages are held only by a runner with admissions
        with self._held_lock:
            envelopes = list(self._held.get(job_id, {}).values())
        if not envelopes:
            return
        if self._admissions.admit(envelopes[0]).verdict is Verdict.WAIT:
            now_us = self._clock() * 1e6
            overdue = [e for e in envelopes if isinstance(e.get("deadline_at"), int) and e["deadline_at"] <= now_us]
            if overdue:
                log.info("dropped held messages past their deadline", extra={"fields": {"messages": len(overdue)}})
            self._unhold(job_id, overdue)
            return
        self._unhold(job_id, envelopes)
        try:
            for envelope in envelopes:
                self._dispatch(envelope)  # decided now: runs, or is answered with the refusal
        except RuntimeError:  # the pools were shut down: stopping
            return

    def _hold(self, envelope: dict[str, Any]) -> None:
        with self._held_lock:
            self._held.setdefault(str(envelope.get("job_id")), {})[envelope["id"]] = envelope

    def _unhold(self, job_id: str, envelopes: list[dict[str, Any]]) -> None:
        with self._held_lock:
            held = self._held.get(job_id, {})
            for envelope in envelopes:
                held.pop(envelope["id"], None)
            if not held:
                self._held.pop(job_id, None)

    def _answer_held_as_pending(self) -> None:
        with self._held_lock:
            held = [envelope for by_id in self._held.values() for envelope in by_id.values()]
            self._held.clear()
        pending = Admission(Verdict.WAIT, ErrorCode.JOB_PENDING_APPROVAL, ("approval: pending",))
        for envelope in held:
            self._answer(envelope, self._refuse(envelope, pending))

    # --------------------------------------------------------------- messages

    def _handle(self, envelope: dict[str, Any], slot: _ReplySlot | None) -> None:
        try:
            kept = get_reply(self._engine, envelope["id"])
            if kept is not None:  # delivered again: answered from the record, never executed twice
                self._send_reply(envelope["id"], kept, slot)
                return
            admission = self._admit(envelope)
            if admission.verdict is Verdict.WAIT:
                self._hold(envelope)
                return
            reply = self._run(envelope) if admission.verdict is Verdict.RUN else self._refuse(envelope, admission)
            self._answer(envelope, reply, slot)
        finally:
            if slot is not None:
                slot.finish()

    def _admit(self, envelope: dict[str, Any]) -> Admission:
        if self._admissions is None or not isinstance(envelope.get("job_id"), str):
            return Admission(Verdict.RUN)  # no policy (the channel's own tests); no job id: _run refuses it
        return self._admissions.admit(envelope)

    def _refuse(self, envelope: dict[str, Any], admission: Admission) -> bytes | None:
        assert admission.code is not None
        try:
            payload = base64.b64decode(envelope.get("payload", ""), validate=True)
            return self._host.refuse(
                payload,
                job_id=str(envelope["job_id"]),
                app=str(envelope.get("app")),
                code=admission.code,
                hints=admission.hints,
            )
        except (InputError, ValueError) as exc:
            log.warning("refused an undecodable message", extra={"fields": {"error": type(exc).__name__}})
            return None

    def _answer(self, envelope: dict[str, Any], reply: bytes | None, slot: _ReplySlot | None = None) -> None:
        """Keep a new reply (the one kept first wins), then send it (in ``slot`` when the poll still waits for
        it); ``None``: nothing to answer."""
        if reply is None:
            return
        message_id: str = envelope["id"]
        kept = keep_reply(
            self._engine,
            message_id=message_id,
            job_id=envelope.get("job_id"),
            payload=reply,
            now=int(self._clock() * 1e6),
        )
        self._send_reply(message_id, kept, slot)

    def _run(self, envelope: dict[str, Any]) -> bytes | None:
        try:
            payload = base64.b64decode(envelope.get("payload", ""), validate=True)
            app, types = envelope.get("app"), envelope.get("message_types")
            if not isinstance(envelope.get("job_id"), str) or not isinstance(app, str) or not isinstance(types, list):
                raise InputError(detail="envelope without job, app or message types")
            if not _round_allowed(envelope.get("round"), envelope.get("rounds")):
                raise InputError(detail="a round outside the job's rounds")
            return self._host.handle(
                payload,
                job_id=envelope["job_id"],
                app=app,
                allowed_message_types=frozenset(map(str, types)),
                binding=self._binding(envelope),
            )
        except (InputError, ValueError) as exc:
            log.warning(
                "refused a message (undecodable, or outside its job)", extra={"fields": {"error": type(exc).__name__}}
            )
            return None

    def _binding(self, envelope: dict[str, Any]) -> Callable[[Message], MessageRefusal | None] | None:
        """The checks of a message before its app reads it: its job's signed spec, and no revoked node among the
        participants of a secure round (None: the runner has no admissions, or the job was admitted without a
        verified signature, which only a runner without admissions does)."""
        if self._admissions is None:
            return None
        admissions, job_id = self._admissions, str(envelope["job_id"])
        trusted = admissions.trusted(job_id)
        if trusted is None:
            return None
        message_id = str(envelope.get("id"))

        def check(message: Message) -> MessageRefusal | None:
            problems = message_problems(trusted, message)
            if problems:
                admission = admissions.refuse_message(job_id, message_id, problems)
            elif self._names_revoked(message):
                admission = admissions.refuse_revoked_peer(job_id, message_id)
            else:
                return None
            assert admission.code is not None
            return MessageRefusal(admission.code, admission.hints)

        return check

    def _names_revoked(self, message: Message) -> bool:
        """Whether ``message`` asks for masking in a secure round that a node on the newest revocation list takes
        part in (the message is read only while the list names any node)."""
        assert self._admissions is not None
        held = self._admissions.trust.revocations.held()
        if held is None or not held.nodes:
            return False
        participants = round_participants(message)
        if participants is None:
            return False
        return any(held.node_revoked(flower_node_id=p) for p in participants.flower_node_ids) or any(
            held.node_revoked(node_id=name) for name in participants.names
        )

    def _send_reply(self, message_id: str, reply: bytes, slot: _ReplySlot | None = None) -> None:
        if slot is not None and slot.offer(message_id, reply):
            return  # the next poll carries it
        self._post_reply(_reply_body(message_id, reply))

    def _post_reply(self, body: dict[str, str]) -> None:
        try:
            self._post("/channel/v1/reply", body)
        except MedfedError as exc:
            log.warning("a reply was not delivered", extra={"fields": {"code": str(exc.code)}})
