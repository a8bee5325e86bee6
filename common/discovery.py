"""LAN discovery of the coordinator with zeroconf (DNS-SD over multicast DNS, ``_medfed._tcp.local.``).

Discovery is only a *locator*. An answer says where a coordinator claims to be and which identity
fingerprint it claims; anyone on the LAN can send such an answer. The node trusts nothing it learns
here: it connects and checks the coordinator's identity against the fingerprint carried in its
one-time enrolment code (TLS pinned from the first connection), so a spoofed answer fails there. This
module therefore only filters answers by the claimed fingerprint, to skip obvious strangers early.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

__all__ = ["SERVICE_TYPE", "CoordinatorAdvertiser", "DiscoveredCoordinator", "discover_coordinators"]

SERVICE_TYPE = "_medfed._tcp.local."
_FINGERPRINT = b"fp"
_SCHEME = b"scheme"


@dataclass(frozen=True, slots=True)
class DiscoveredCoordinator:
    """One answer: where a coordinator says it is, and the identity fingerprint it claims."""

    instance: str
    addresses: tuple[str, ...]
    port: int
    fingerprint: str
    scheme: str

    @property
    def url(self) -> str:
        """A URL for the first address (IPv4 as is, IPv6 in brackets)."""
        host = self.addresses[0]
        return f"{self.scheme}://{'[' + host + ']' if ':' in host else host}:{self.port}"


def _zeroconf(interfaces: Sequence[str] | None) -> Zeroconf:
    if interfaces:
        return Zeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only)
    return Zeroconf()


class CoordinatorAdvertiser:
    """Advertise this coordinator on the LAN until closed (a context manager)."""

    def __init__(
        self,
        *,
        instance: str,
        port: int,
        addresses: Sequence[str],
        fingerprint: str,
        scheme: str = "https",
        interfaces: Sequence[str] | None = None,
    ) -> None:
        self._zeroconf = _zeroconf(interfaces)
        label = "".join(c if c.isalnum() or c == "-" else "-" for c in instance)[:63] or "medfed"
        self._info = ServiceInfo(
            SERVICE_TYPE,
            f"{label}.{SERVICE_TYPE}",
            addresses=[socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in addresses],
            port=port,
            properties={_FINGERPRINT: fingerprint.encode(), _SCHEME: scheme.encode()},
            server=f"{label}.local.",
        )
        self._zeroconf.register_service(self._info)

    def close(self) -> None:
        """Withdraw the advertisement and stop answering."""
        self._zeroconf.unregister_service(self._info)
        self._zeroconf.close()

    def __enter__(self) -> CoordinatorAdvertiser:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Collector(ServiceListener):
    def __init__(self, wanted: str | None) -> None:
        self.wanted = wanted
        self.found: dict[str, DiscoveredCoordinator] = {}
        self.matched = threading.Event()
        self._lock = threading.Lock()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        info = zc.get_service_info(type_, name, timeout=2000)
        if info is None or info.port is None:
            return
        fingerprint = (info.properties.get(_FINGERPRINT) or b"").decode(errors="replace")
        if self.wanted is not None and fingerprint != self.wanted:
            return  # a stranger, or a spoof that would fail the pinned TLS check anyway
        scheme = (info.properties.get(_SCHEME) or b"https").decode(errors="replace")
        addresses = tuple(info.parsed_addresses())
        if not addresses:
            return
        with self._lock:
            self.found[name] = DiscoveredCoordinator(name, addresses, info.port, fingerprint, scheme)
        if self.wanted is not None:
            self.matched.set()

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.add_service(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self._lock:
            self.found.pop(name, None)


def discover_coordinators(
    *,
    timeout_s: float,
    fingerprint: str | None = None,
    interfaces: Sequence[str] | None = None,
) -> list[DiscoveredCoordinator]:
    """Coordinators answering on the LAN within ``timeout_s``.

    With ``fingerprint``, only answers claiming it are kept and the call returns at the first one;
    without, it listens for the whole window and returns every answer, sorted by instance name.
    """
    zeroconf = _zeroconf(interfaces)
    collector = _Collector(fingerprint)
    browser = ServiceBrowser(zeroconf, SERVICE_TYPE, collector)
    try:
        collector.matched.wait(timeout_s)
    finally:
        browser.cancel()
        zeroconf.close()
    return sorted(collector.found.values(), key=lambda c: c.instance)
