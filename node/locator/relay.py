"""The relay calls of the record locator, over the node's signed, CA-pinned client.

``send`` queues a payload for another node; ``poll`` takes this node's messages of one kind
(acknowledging earlier ones, which deletes them at the coordinator). Payloads travel base64-encoded
in JSON; they are already sealed (:mod:`common.locator.envelopes`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from common.errors import InternalError
from common.locator.certificates import KeyCertificate

__all__ = ["CoordinatorLink", "Relayed", "fetch_certificate", "poll", "send"]

SEND_PATH = "/relay/v1/send"
POLL_PATH = "/relay/v1/poll"
CERTIFICATE_PATH = "/relay/v1/certificates/{node_id}"


class CoordinatorLink(Protocol):
    """What the locator needs of :class:`node.coordinator_client.CoordinatorClient`."""

    def post_json(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        """POST a JSON body (signed); the parsed answer."""
        ...

    def get_json(self, path: str, *, timeout: float | None = None) -> Any:
        """GET (signed); the parsed answer."""
        ...


@dataclass(frozen=True, slots=True)
class Relayed:
    """One message taken from the relay."""

    id: str
    sender: str
    kind: str
    correlation: str
    payload: bytes


def send(link: CoordinatorLink, *, to: str, kind: str, correlation: str, payload: bytes) -> None:
    """Queue ``payload`` for node ``to``."""
    body = {"to": to, "kind": kind, "correlation": correlation, "payload": base64.b64encode(payload).decode()}
    link.post_json(SEND_PATH, body)


def poll(
    link: CoordinatorLink, *, kind: str, correlation: str | None, acks: Sequence[str], wait_s: float
) -> list[Relayed]:
    """This node's messages of ``kind`` (and ``correlation``), after acknowledging ``acks``."""
    body: dict[str, Any] = {"kind": kind, "acks": list(acks), "wait_s": wait_s}
    if correlation is not None:
        body["correlation"] = correlation
    answer = link.post_json(POLL_PATH, body, timeout=wait_s + 15.0)
    messages = answer.get("messages") if isinstance(answer, dict) else None
    if not isinstance(messages, list):
        raise InternalError(detail="the coordinator's relay answer has no messages list")
    taken: list[Relayed] = []
    for item in messages:
        try:
            taken.append(
                Relayed(
                    id=str(item["id"]),
                    sender=str(item["from"]),
                    kind=str(item["kind"]),
                    correlation=str(item["correlation"]),
                    payload=base64.b64decode(item["payload"], validate=True),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise InternalError(detail="the coordinator's relay answer is malformed") from None
    return taken


def fetch_certificate(link: CoordinatorLink, node_id: str) -> KeyCertificate:
    """A node's key certificate as the coordinator serves it (not yet verified)."""
    answer = link.get_json(CERTIFICATE_PATH.format(node_id=node_id))
    try:
        return KeyCertificate.model_validate(answer)
    except ValueError:
        raise InternalError(detail="the coordinator's certificate answer is malformed") from None
