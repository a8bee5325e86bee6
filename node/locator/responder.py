"""Node B's side of the record locator: answer requests that other nodes sent through the relay.

For each request taken from the relay (``kind=request``), in this order:

1. the asking node's key certificate must verify against the network-admin key; if it does not, the
   request is not opened further and a *signed, unsealed* refusal (status and reason only) goes back,
   because nothing may be sealed to a key the network does not vouch for. An asker on the node's
   revocation list (by id or key) gets no answer at all — the node sends a revoked node nothing — and the
   refusal is audited (``node_revoked``);
2. the request must open (sealed to this node) and its signature verify with the asker's certified key;
3. the purpose of use must be treatment;
4. the reference must name a patient this node has published (not withdrawn, not deleted);
5. the demographics the asker sent must MATCH this node's record of the patient — the same token
   recipe and decision rule as the index (:func:`common.linkage.matching.decide`), computed here with
   this node's linkage key over the two records, so "the same person" means the same thing everywhere;
6. the patient must not have opted out of record sharing (checked now, at release time, whatever the
   index said);

then a year of labs and diagnoses (:mod:`node.locator.release`) is sealed to the asker's certified key
and sent back; otherwise a sealed refusal with the reason. Every answer is audited (``inbound``).
Messages are acknowledged (and so deleted at the coordinator) on the next poll, after the answer was sent.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson

from common.errors import AccessError, ErrorCode, InputError, MedfedError
from common.linkage import LinkageKey, decide, from_fhir_patient, query_tokens, tokens_for
from common.linkage.matching import Decision
from common.locator.envelopes import open_message, seal_message, signed_notice
from node.linkage.consent import sharing_opted_out
from node.linkage.records import patient_for_ref
from node.locator import relay
from node.locator.audit import LocatorEvent
from node.locator.context import LocatorContext
from node.locator.messages import REPLY, REQUEST, TREATMENT, Refusal, demographics_from_wire
from node.locator.release import release_bundle
from node.store.resources import get_current

__all__ = ["LocatorResponder", "same_person"]

log = logging.getLogger("medfed.node.locator")


def same_person(asked: Any, local_patient: dict[str, Any], key: LinkageKey) -> bool:
    """Whether the asker's demographics and this node's Patient MATCH under the linkage recipe."""
    mine = {(t.variant, t.value_hex) for t in tokens_for(from_fhir_patient(local_patient), key)}
    theirs = query_tokens(demographics_from_wire(asked), key)
    agreeing = {t.variant for t in theirs if (t.variant, t.value_hex) in mine}
    return decide(agreeing) is Decision.MATCH


class LocatorResponder:
    """Polls the relay for requests and answers them in a background thread until :meth:`stop`."""

    def __init__(self, context: LocatorContext, *, poll_wait_s: float = 20.0) -> None:
        self._context = context
        self._poll_wait_s = poll_wait_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="medfed-locator-responder", daemon=True)
        self.connected = threading.Event()  # set once a poll has reached the coordinator

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the poll in flight (at most ``poll_wait_s``)."""
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        acks: list[str] = []
        failures = 0
        while not self._stop.is_set():
            try:
                taken = relay.poll(
                    self._context.link, kind=REQUEST, correlation=None, acks=acks, wait_s=self._poll_wait_s
                )
            except MedfedError as exc:
                failures += 1
                log.warning("relay poll failed; retrying", extra={"fields": {"code": str(exc.code)}})
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 10)))
                continue
            except RuntimeError:  # the client was closed under a poll in flight: the node is stopping
                if self._stop.is_set():
                    return
                raise
            failures, acks = 0, []
            self.connected.set()
            for message in taken:
                try:
                    self.answer(message)
                except Exception as exc:  # one bad request must not stop the responder
                    # The answer was not sent; the request comes again. Only the code or type is logged.
                    code = str(exc.code) if isinstance(exc, MedfedError) else type(exc).__name__
                    log.warning("a locator answer was not sent", extra={"fields": {"code": code}})
                    continue
                acks.append(message.id)

    # ---------------------------------------------------------------------------------- one request

    def answer(self, message: relay.Relayed) -> str:
        """Answer one request (see the module docstring); the outcome audited. Raises only if sending fails."""
        context = self._context

        def event(purpose: str, outcome: str, **rest: Any) -> LocatorEvent:
            return LocatorEvent(
                direction="inbound",
                request_id=message.correlation,
                peer_node=message.sender,
                purpose=purpose,
                outcome=outcome,
                **rest,
            )

        try:
            asker = context.certificates.certified(message.sender)
        except AccessError as exc:
            if exc.code is ErrorCode.NODE_REVOKED:  # a revoked node is sent nothing, not even a refusal
                context.audit.record(event("unknown", "refused", reason=str(Refusal.NODE_REVOKED)))
                return "refused"
            notice = signed_notice(
                context.identity.signing_key,
                kind=REPLY,
                sender=context.node_id,
                to=message.sender,
                correlation=message.correlation,
                issued_at=time.time_ns() // 1000,
                status="refused",
                reason=Refusal.KEY_NOT_CERTIFIED,
            )
            relay.send(context.link, to=message.sender, kind=REPLY, correlation=message.correlation, payload=notice)
            context.audit.record(event("unknown", "refused", reason=str(Refusal.KEY_NOT_CERTIFIED)))
            return "refused"
        purpose, patient_id, status = "unknown", None, "refused"
        reason: Refusal | None = Refusal.ERROR
        bundle: dict[str, Any] | None = None
        try:
            opened = open_message(
                message.payload,
                recipient=context.node_id,
                recipient_key=context.identity.sealing_key,
                sender=message.sender,
                sender_key=asker.verify_key,
                kind=REQUEST,
                correlation=message.correlation,
            )
            purpose = str(opened.body.get("purpose", "unknown"))[:32]
            patient_id, status, reason, bundle = self._decide(opened.body)
        except (AccessError, InputError):
            reason = Refusal.MALFORMED
        except MedfedError as exc:
            log.warning("a locator request failed", extra={"fields": {"code": str(exc.code)}})
        body: dict[str, Any] = {"status": status}
        if reason is not None:
            body["reason"] = str(reason)
        if bundle is not None:
            body["bundle"] = bundle
        payload = seal_message(
            context.identity.signing_key,
            asker.seal_key,
            kind=REPLY,
            sender=context.node_id,
            to=message.sender,
            correlation=message.correlation,
            issued_at=time.time_ns() // 1000,
            body=body,
        )
        relay.send(context.link, to=message.sender, kind=REPLY, correlation=message.correlation, payload=payload)
        context.audit.record(
            event(
                purpose,
                status,
                patient_id=patient_id,
                reason=None if reason is None else str(reason),
                record_count=None if bundle is None else int(bundle["total"]),
            )
        )
        return status

    def _decide(self, body: dict[str, Any]) -> tuple[str | None, str, Refusal | None, dict[str, Any] | None]:
        """``(patient id, status, reason, bundle)`` for an opened request."""
        context = self._context
        if body.get("purpose") != TREATMENT:
            return None, "refused", Refusal.PURPOSE, None
        ref = body.get("ref")
        if not isinstance(ref, str):
            return None, "refused", Refusal.MALFORMED, None
        engine = context.service.engine
        with engine.connect() as conn:
            patient_id = patient_for_ref(conn, ref)
            if patient_id is None:
                return None, "refused", Refusal.UNKNOWN_RECORD, None
            stored = get_current(conn, "Patient", patient_id)
            opted_out = sharing_opted_out(conn, patient_id)
        if stored is None or stored.deleted:
            return patient_id, "refused", Refusal.UNKNOWN_RECORD, None
        try:
            matches = same_person(body.get("demographics"), orjson.loads(stored.content), context.linkage_key())
        except InputError:
            return patient_id, "refused", Refusal.MALFORMED, None
        if not matches:
            return patient_id, "refused", Refusal.DEMOGRAPHICS_MISMATCH, None
        if opted_out:
            return patient_id, "refused", Refusal.CONSENT, None
        return patient_id, "released", None, release_bundle(context.service, patient_id)
