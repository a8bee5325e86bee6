"""The background publisher: drains ``linkage_outbox`` into the coordinator's index.

One pass (:meth:`LinkagePublisher.publish_pending`) takes up to :data:`BATCH` queued patients and, for
each, decides from the node's own store what the index should hold:

- the Patient exists and has no sharing opt-out: its token family under the current linkage key
  (:func:`common.linkage.tokens_for` of :func:`common.linkage.from_fhir_patient`) is published under
  the patient's opaque reference (unless exactly these tokens were published last time);
- the Patient opted out of sharing: its tokens are published and its reference at once withdrawn as a
  *person* (the coordinator finds that person's records at every node from the tokens, removes them
  all and keeps the person out of the index);
- the Patient was deleted (or has no demographics left to make a token from): its reference is withdrawn.

Then one publish and at most two withdraw requests go to the coordinator, and only after they
succeeded are the patients taken off the queue (a patient queued again meanwhile stays queued). A
failure leaves the queue as it was; the loop retries with jittered exponential back-off. Logs carry
counts and error codes only.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy.engine import Engine

from common.errors import ConfigError, MedfedError
from common.linkage import LinkageKeyProvider, from_fhir_patient, tokens_for
from common.locator.index_wire import MAX_RECORDS, PublishedRecord, PublishRequest, WireToken, WithdrawRequest
from node.linkage import outbox, records
from node.linkage.consent import sharing_opted_out
from node.store.db import write_transaction
from node.store.resources import get_many

__all__ = ["BATCH", "IndexLink", "LinkagePublisher", "PassSummary"]

log = logging.getLogger("medfed.node.linkage")

BATCH = min(200, MAX_RECORDS)
PUBLISH_PATH = "/index/v1/publish"
WITHDRAW_PATH = "/index/v1/withdraw"


class IndexLink(Protocol):
    """What the publisher needs of the signed, pinned client to the coordinator."""

    def post_json(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        """POST a JSON body, return the parsed answer; MedfedError on failure."""
        ...


@dataclass(frozen=True, slots=True)
class PassSummary:
    """What one pass did."""

    published: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    opted_out: int = 0

    @property
    def handled(self) -> int:
        """Patients taken off the queue."""
        return self.published + self.unchanged + self.withdrawn + self.opted_out


def _digest(key_id: str, tokens: list[WireToken]) -> str:
    text = "\n".join(sorted(f"{t.variant}:{t.value}" for t in tokens))
    return hashlib.sha256(f"{key_id}\n{text}".encode()).hexdigest()


class LinkagePublisher:
    """Publishes queued patients' tokens; :meth:`start` runs passes in a thread until :meth:`stop`."""

    def __init__(
        self,
        engine: Engine,
        keys: LinkageKeyProvider,
        link: IndexLink,
        *,
        poll_s: float = 5.0,
        on_pass: Callable[[PassSummary], None] | None = None,
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._link = link
        self._poll_s = poll_s
        self._on_pass = on_pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="medfed-linkage-publisher", daemon=True)

    # ------------------------------------------------------------------ one pass

    def publish_pending(self) -> PassSummary:
        """One pass over the oldest queued patients (see the module docstring); raises on failure."""
        key = self._keys.current()
        with self._engine.connect() as conn:
            queued = outbox.pending(conn, limit=BATCH)
            if not queued:
                return PassSummary()
            patients = get_many(conn, (("Patient", patient_id) for patient_id, _ in queued))
            known = {patient_id: records.get_record(conn, patient_id) for patient_id, _ in queued}
            opted_out = {patient_id for patient_id, _ in queued if sharing_opted_out(conn, patient_id)}
        publish: list[PublishedRecord] = []
        states: list[tuple[str, str, str, str | None]] = []  # patient, ref, state, digest
        withdraw: list[str] = []
        withdraw_person: list[str] = []
        unchanged = 0
        for patient_id, _ in queued:
            record = known[patient_id]
            ref = record.ref if record is not None else records.new_ref()
            stored = patients.get(("Patient", patient_id))
            tokens: list[WireToken] = []
            if stored is not None and not stored.deleted:
                demographics = from_fhir_patient(orjson.loads(stored.content))
                tokens = [WireToken(variant=t.variant, value=t.value_hex) for t in tokens_for(demographics, key)]
            if patient_id in opted_out:
                if record is None or record.state != records.OPTED_OUT:
                    # Published and at once withdrawn as a person: the coordinator finds the person's
                    # records at other nodes from these tokens, removes them and keeps the person out.
                    if tokens:
                        publish.append(PublishedRecord(ref=ref, tokens=tokens))
                    withdraw_person.append(ref)
                states.append((patient_id, ref, records.OPTED_OUT, None))
            elif tokens:
                digest = _digest(key.key_id, tokens)
                if record is not None and record.state == records.PUBLISHED and record.digest == digest:
                    unchanged += 1
                    continue
                publish.append(PublishedRecord(ref=ref, tokens=tokens))
                states.append((patient_id, ref, records.PUBLISHED, digest))
            else:
                if record is not None and record.state == records.PUBLISHED:
                    withdraw.append(ref)
                states.append((patient_id, ref, records.WITHDRAWN, None))
        if withdraw:
            self._link.post_json(WITHDRAW_PATH, WithdrawRequest(refs=withdraw).model_dump())
        if publish:
            self._link.post_json(PUBLISH_PATH, PublishRequest(key_id=key.key_id, records=publish).model_dump())
        if withdraw_person:  # after the publication that carries these records' tokens
            self._link.post_json(WITHDRAW_PATH, WithdrawRequest(refs=withdraw_person, person=True).model_dump())
        with write_transaction(self._engine) as conn:
            for subject, subject_ref, state, tokens_digest in states:
                records.set_state(
                    conn,
                    patient_id=subject,
                    ref=subject_ref,
                    state=state,
                    key_id=key.key_id if state == records.PUBLISHED else None,
                    digest=tokens_digest,
                )
            outbox.done(conn, queued)
        return PassSummary(
            published=len(publish),
            unchanged=unchanged,
            withdrawn=sum(1 for _, _, state, _ in states if state == records.WITHDRAWN),
            opted_out=sum(1 for _, _, state, _ in states if state == records.OPTED_OUT),
        )

    def drain(self, *, max_passes: int = 1_000_000) -> PassSummary:
        """Passes until the queue is empty; the totals."""
        totals = {"published": 0, "unchanged": 0, "withdrawn": 0, "opted_out": 0}
        for _ in range(max_passes):
            summary = self.publish_pending()
            if not summary.handled:
                break
            for name in totals:
                totals[name] += getattr(summary, name)
        return PassSummary(**totals)

    # ------------------------------------------------------------------ thread

    def start(self) -> None:
        """Run passes in a background thread."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current pass."""
        self._stop.set()
        outbox.OUTBOX_CHANGED.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                summary = self.publish_pending()
            except ConfigError as exc:
                if not failures:  # said once per pause: a node without a linkage key waits quietly
                    log.warning("linkage publishing is paused", extra={"fields": {"code": str(exc.code)}})
                summary, failures = PassSummary(), failures + 1
            except Exception as exc:  # the thread must outlive any one failure
                failures += 1
                code = str(exc.code) if isinstance(exc, MedfedError) else type(exc).__name__
                # Only the code or the exception's type: a database error's text can carry row values.
                log.warning("linkage publishing failed; retrying", extra={"fields": {"code": code}})
                self._stop.wait(random.uniform(0, min(60.0, 0.5 * 2 ** min(failures, 10))))
                continue
            else:
                failures = 0
            if self._on_pass is not None and summary.handled:
                self._on_pass(summary)
            if summary.handled:
                counts = {"published": summary.published, "withdrawn": summary.withdrawn + summary.opted_out}
                log.info("linkage tokens published", extra={"fields": counts})
                continue  # more may be queued
            outbox.OUTBOX_CHANGED.wait(self._poll_s if not failures else min(60.0, self._poll_s * 12))
            outbox.OUTBOX_CHANGED.clear()
