"""Everything the locator needs at one node, built from the node's settings (enrolled nodes only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.linkage import LinkageKey, LinkageKeyProvider
from node.coordinator_client import CoordinatorClient
from node.fhir.service import FhirService
from node.identity import NodeIdentity
from node.linkage.keyfile import key_provider
from node.locator.audit import AuditChain, LocatorAuditLog
from node.locator.certificates import CertificateBook
from node.locator.relay import CoordinatorLink
from node.trust.revocations import RevocationBook

__all__ = ["LocatorContext", "open_context"]


@dataclass(frozen=True)
class LocatorContext:
    """This node's identity, linkage key, store, coordinator link, peers' certificates and audit."""

    identity: NodeIdentity
    service: FhirService
    keys: LinkageKeyProvider
    link: CoordinatorLink
    certificates: CertificateBook
    audit: LocatorAuditLog

    @property
    def node_id(self) -> str:
        """This node's id in the network."""
        return str(self.identity.node_id)

    def close(self) -> None:
        """Close the link to the coordinator (when it can be closed)."""
        close = getattr(self.link, "close", None)
        if callable(close):
            close()

    def linkage_key(self) -> LinkageKey:
        """The current network linkage key; LINKAGE_NOT_CONFIGURED (a ConfigError) when there is none."""
        return self.keys.current()


def open_context(
    data_dir: Path,
    service: FhirService,
    *,
    proxy: str | None = None,
    chain: AuditChain | None = None,
    link: CoordinatorLink | None = None,
) -> LocatorContext | None:
    """The context of an enrolled node (None before enrolment); ``link`` defaults to a new signed client."""
    identity = NodeIdentity.load(data_dir)
    if identity is None:
        return None
    coordinator = link if link is not None else CoordinatorClient(identity, proxy=proxy, timeout=60)
    return LocatorContext(
        identity=identity,
        service=service,
        keys=key_provider(data_dir),
        link=coordinator,
        certificates=CertificateBook(
            coordinator,
            identity.coordinator_public_key,
            revocations=RevocationBook(service.engine, identity.network_admin_public_key),
        ),
        audit=LocatorAuditLog(service.engine, chain),
    )
