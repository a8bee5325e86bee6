"""The envelope each channel message travels in: the Flower message plus what the node checks it against.

Every message of a job repeats the same context — the spec fields the node's policy reads, the submitter,
the researcher's signed job document — and none of it changes after submission, so :class:`Envelopes`
reads it once per job and keeps it (least recently used out, bounded). The researcher's certificate is
read on every delivery instead: a renewed one must reach the nodes, and revocation lists travel separately.
Context is read outside the poll's write transaction, so the database's write lock is not held for reads.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from coordinator.store import jobs, messages, researchers

__all__ = ["POLICY_FIELDS", "Envelopes"]

# The spec fields a node's policy reads (node/policy/jobs.py); parameters and strategies stay here.
POLICY_FIELDS = (
    "kind",
    "app",
    "study",
    "analysis",
    "source",
    "columns",
    "features",
    "categorical",
    "target",
    "event",
    "time",
    "split",
    "rounds",
    "privacy",
)
REMEMBERED_JOBS = 1024


@dataclass(frozen=True, slots=True)
class _JobContext:
    fields: dict[str, Any]  # what every envelope of the job carries, but the certificate
    researcher: str | None  # whose certificate goes with it (None: the job was not submitted signed)


class Envelopes:
    """Builds the envelopes of delivered messages, with each job's fixed context read once (thread-safe)."""

    def __init__(self, engine: Engine, *, remembered: int = REMEMBERED_JOBS) -> None:
        self._engine = engine
        self._remembered = remembered
        self._contexts: OrderedDict[str, _JobContext] = OrderedDict()
        self._lock = threading.Lock()

    def build(self, pending: list[messages.Message]) -> list[dict[str, Any]]:
        """One envelope per message, in order."""
        certificates: dict[str, dict[str, Any] | None] = {}
        out: list[dict[str, Any]] = []
        for message in pending:
            context = self._context(message.job_id)
            membership = None
            if context.researcher is not None:
                if context.researcher not in certificates:
                    certificates[context.researcher] = researchers.current_membership(
                        self._engine, researcher=context.researcher
                    )
                membership = certificates[context.researcher]
            out.append(
                {
                    "id": message.id,
                    "job_id": message.job_id,
                    "round": message.round,
                    "deadline_at": message.deadline_at,
                    "payload": base64.b64encode(message.payload).decode(),
                    **context.fields,
                    "membership": membership,
                }
            )
        return out

    def _context(self, job_id: str | None) -> _JobContext:
        if job_id is None:
            return _NO_JOB
        with self._lock:
            known = self._contexts.get(job_id)
            if known is not None:
                self._contexts.move_to_end(job_id)
                return known
        context = self._read(job_id)
        with self._lock:
            self._contexts[job_id] = context
            while len(self._contexts) > self._remembered:
                self._contexts.popitem(last=False)
        return context

    def _read(self, job_id: str) -> _JobContext:
        record = jobs.get_job(self._engine, job_id=job_id)
        spec = dict(record.spec)
        signed = researchers.signed_job_of(self._engine, job_id=job_id)
        fields = {
            "app": spec.get("app"),
            "message_types": spec.get("message_types", []),
            "rounds": spec.get("rounds"),
            "spec": {key: spec[key] for key in POLICY_FIELDS if key in spec},
            "submitter": record.submitter,
            "signed_job": None if signed is None else signed[1],
        }
        return _JobContext(fields, None if signed is None else signed[0])


_NO_JOB = _JobContext(
    {"app": None, "message_types": [], "rounds": None, "spec": {}, "submitter": None, "signed_job": None}, None
)
