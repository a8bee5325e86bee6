"""Start and stop the node's patient-index publisher and record-locator responder (enrolled nodes only).

Started with the node's web application (its lifespan, ``node/app.py``), so ``medfed node start`` runs
them and a stopped app stops them. A node that is not enrolled runs neither; a node without a linkage
key runs both, and the publisher waits (``LINKAGE_NOT_CONFIGURED``) until a key is installed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from node.config import NodeSettings
from node.fhir.service import FhirService
from node.linkage.publisher import LinkagePublisher
from node.locator.audit import AuditChain
from node.locator.context import LocatorContext, open_context
from node.locator.responder import LocatorResponder

__all__ = ["LocatorServices", "start_locator_services"]

log = logging.getLogger("medfed.node.locator")


@dataclass
class LocatorServices:
    """The running publisher and responder, and the context the API's ``/locate`` uses."""

    context: LocatorContext
    publisher: LinkagePublisher
    responder: LocatorResponder

    def stop(self) -> None:
        """Stop both threads: the publisher after its pass, the responder without waiting out its long-poll.

        The responder's thread is a daemon and answers nothing more once stopped; a request it took
        but had not answered is delivered again to the next process (it was never acknowledged).
        """
        self.responder.stop(timeout=1.0)
        self.publisher.stop(timeout=10.0)
        self.context.close()


def start_locator_services(
    settings: NodeSettings, service: FhirService, *, chain: AuditChain | None = None, poll_wait_s: float = 20.0
) -> LocatorServices | None:
    """Start publishing and answering on an enrolled node; None (nothing started) otherwise."""
    context = open_context(settings.data_dir, service, proxy=settings.coordinator_proxy, chain=chain)
    if context is None:
        return None
    publisher = LinkagePublisher(service.engine, context.keys, context.link)
    responder = LocatorResponder(context, poll_wait_s=poll_wait_s)
    publisher.start()
    responder.start()
    log.info("patient index publisher and record locator started")
    return LocatorServices(context, publisher, responder)
