"""Running a coordinator: preparing its data directory, database and identity, and serving its API with uvicorn.

The API is served over HTTPS only, with the server certificate ``medfed coordinator init`` issued
from the coordinator's private CA (there is no plain-HTTP mode; the channel routes refuse plain HTTP
as well). While it serves, the coordinator announces itself on the LAN with zeroconf unless
``advertise`` is off; the announcement is withdrawn when the server stops.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from common.crypto import server_ssl_context
from common.discovery import CoordinatorAdvertiser
from common.errors import ConfigError
from common.logs import configure_logging
from common.net import listening_socket
from coordinator.config import CoordinatorSettings
from coordinator.identity import DEFAULT_HOSTNAMES, DEFAULT_IP_ADDRESSES, CoordinatorIdentity, create_identity
from coordinator.store.db import make_engine
from coordinator.store.migrate import current_revision, head_revision, upgrade

__all__ = ["init_coordinator", "open_engine", "serve", "start_advertising", "uvicorn_tls_options"]

log = logging.getLogger("medfed.coordinator")


def _prepare_data_dir(settings: CoordinatorSettings) -> None:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.data_dir.chmod(0o700)  # the database holds token hashes; the identity holds keys
    except OSError as exc:
        raise ConfigError(detail=f"cannot create the data directory ({type(exc).__name__})") from exc


def init_coordinator(
    settings: CoordinatorSettings,
    *,
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
    ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES,
) -> tuple[Engine, str]:
    """Create the data directory (mode 0700), the database at the current schema and the identity (idempotent).

    The identity (signing key, CA, TLS server certificate for ``hostnames`` and ``ip_addresses``) is
    created where absent and kept where present (see :mod:`coordinator.identity`). Returns the engine
    and the schema revision.
    """
    _prepare_data_dir(settings)
    create_identity(settings.data_dir, hostnames=hostnames, ip_addresses=ip_addresses)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    return engine, head_revision()


def open_engine(settings: CoordinatorSettings) -> Engine:
    """The engine of an initialised coordinator; ConfigError when ``medfed coordinator init`` was not run."""
    if not settings.data_dir.is_dir():
        raise ConfigError(detail="the data directory does not exist; run medfed coordinator init")
    engine = make_engine(settings.sqlalchemy_url)
    if current_revision(engine) != head_revision():
        engine.dispose()
        raise ConfigError(detail="the database is not initialised or not current; run medfed coordinator init")
    return engine


def uvicorn_tls_options(identity: CoordinatorIdentity) -> dict[str, Any]:
    """uvicorn ``Config`` options that serve HTTPS with the identity's server certificate.

    The files are uvicorn's ``ssl_certfile``/``ssl_keyfile``; the context itself is built by
    :func:`common.crypto.server_ssl_context` from them, so the coordinator has medfed's TLS policy
    (TLS 1.2 floor, forward-secret AEAD suites only) rather than uvicorn's defaults.
    """
    cert_path, key_path = identity.server_cert_path, identity.server_key_path

    def context(_config: object, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return server_ssl_context(cert_path.read_bytes(), key_path.read_bytes())

    return {"ssl_certfile": str(cert_path), "ssl_keyfile": str(key_path), "ssl_context_factory": context}


def start_advertising(
    settings: CoordinatorSettings, identity: CoordinatorIdentity, *, port: int | None = None
) -> CoordinatorAdvertiser:
    """Announce the coordinator on the LAN (close the result to withdraw it).

    The announcement carries the CA fingerprint, the ``https`` scheme and :attr:`announced_addresses
    <coordinator.config.CoordinatorSettings.announced_addresses>`, and goes out on the interfaces of
    those addresses. ConfigError when there is no address to announce (listening on every interface
    without ``advertise_addresses``) or no port.
    """
    addresses = settings.announced_addresses
    port = settings.port if port is None else port
    if not addresses:
        raise ConfigError(
            detail="nothing to advertise: set advertise_addresses (--advertise-address) or --no-advertise"
        )
    if port == 0:
        raise ConfigError(detail="cannot advertise port 0; give --port or --no-advertise")
    return CoordinatorAdvertiser(
        instance=f"medfed-coordinator-{socket.gethostname()}",
        port=port,
        addresses=addresses,
        fingerprint=identity.ca_fingerprint,
        scheme="https",
        interfaces=[address for address in addresses if ":" not in address] or None,
    )


def serve(settings: CoordinatorSettings) -> None:
    """Serve the API over HTTPS until interrupted, migrating the database first if needed.

    ConfigError before anything is served when ``medfed coordinator init`` has not created the identity.
    """
    # Imported here: the web stack is only needed to serve, not by init/token/enrol-code commands.
    import uvicorn

    from common.flower import route_flower_logging
    from coordinator.app import create_app

    configure_logging(settings.log_level)
    route_flower_logging()  # Flower's console lines join the JSON log, templates only (no identifiers)
    if not settings.data_dir.is_dir():
        raise ConfigError(detail="the data directory does not exist; run medfed coordinator init")
    identity = CoordinatorIdentity.load(settings.data_dir)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    advertiser = start_advertising(settings, identity) if settings.advertise else None
    log.info("coordinator API listening (HTTPS)", extra={"fields": {"host": settings.host, "port": settings.port}})
    listener = listening_socket(settings.host, settings.port)
    try:
        uvicorn.run(
            app,
            fd=listener.fileno(),
            log_config=None,
            access_log=False,
            ws="none",
            # Nodes hold long-polls open for up to 20 s; shutting down does not wait them out.
            timeout_graceful_shutdown=3,
            **uvicorn_tls_options(identity),
        )
    finally:
        listener.close()
        if advertiser is not None:
            advertiser.close()
