"""Running a node: preparing its data directory and database, and serving its API with uvicorn."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from common.crypto import server_ssl_context
from common.errors import ConfigError
from common.logs import configure_logging
from common.net import listening_socket
from node.audit import AuditLog, ReceiptSender
from node.config import NodeSettings
from node.fhir.service import FhirService
from node.identity import NodeIdentity
from node.policy.starter import write_starter_policy
from node.privacy.secret import ensure_disclosure_secret
from node.store.db import make_engine
from node.store.migrate import current_revision, head_revision, upgrade
from node.views.materialise import install_standard_views

__all__ = ["init_node", "open_service", "serve", "start_receipt_sender", "uvicorn_tls_options"]

log = logging.getLogger("medfed.node")


def init_node(settings: NodeSettings) -> tuple[Engine, str]:
    """Create the data directory and its disclosure secret, and bring the database to the current schema.

    Idempotent: an existing disclosure secret is kept (new noise for old cells would let answers be averaged).
    A new node (an empty database) without a policy file gets the permissive starter policy
    (:mod:`node.policy.starter`); an existing node never does, so a deleted policy stays deleted.
    """
    data_dir: Path = settings.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)  # the database holds patient data
    except OSError as exc:
        raise ConfigError(detail=f"cannot create the data directory ({type(exc).__name__})") from exc
    ensure_disclosure_secret(data_dir)
    engine = make_engine(settings.sqlalchemy_url)
    new_node = current_revision(engine) is None
    upgrade(engine)
    if new_node:
        try:
            write_starter_policy(settings.policy_path)
        except OSError as exc:
            raise ConfigError(detail=f"cannot write the starter policy ({type(exc).__name__})") from exc
    install_standard_views(engine)  # registers the library's views; builds new or changed ones
    return engine, head_revision()


def open_service(settings: NodeSettings) -> FhirService:
    """A FhirService on an initialised node; ConfigError if ``medfed node init`` was not run."""
    if not settings.data_dir.is_dir():
        raise ConfigError(detail="the data directory does not exist; run medfed node init")
    engine = make_engine(settings.sqlalchemy_url)
    if current_revision(engine) != head_revision():
        raise ConfigError(detail="the database is not initialised or not current; run medfed node init")
    return FhirService(engine, default_count=settings.default_page_size, max_count=settings.max_page_size)


def serve(settings: NodeSettings) -> None:
    """Migrate if needed and serve the API until interrupted."""
    # Imported here: the web stack is only needed to serve, not by init/ingest/token commands.
    import uvicorn

    from node.app import create_app

    configure_logging(settings.log_level)
    init_node(settings)
    app = create_app(settings)
    tls = uvicorn_tls_options(settings)  # a certificate or key that does not load stops here, before serving
    app.state.policy.current()  # reads the policy now, so a change made while the node was down is audited
    runner = None
    receipts = None
    identity = NodeIdentity.load(settings.data_dir)
    if identity is not None:
        # Imported only on enrolled nodes: it brings torch and flwr, which a plain FHIR node does not need.
        from node.federation.service import start_federation

        runner = start_federation(settings, app.state.service, policy=app.state.policy, audit=app.state.audit_log)
        receipts = start_receipt_sender(settings, app.state.audit_log, identity)
    log.info(
        "node API listening",
        extra={"fields": {"host": settings.host, "port": settings.port, "tls": bool(tls)}},
    )
    listener = listening_socket(settings.host, settings.port)
    try:
        uvicorn.run(app, fd=listener.fileno(), log_config=None, access_log=False, **tls)
    finally:
        listener.close()
        if receipts is not None:
            receipts.stop()
        if runner is not None:
            runner.stop()


def uvicorn_tls_options(settings: NodeSettings) -> dict[str, Any]:
    """uvicorn options that serve HTTPS with ``tls_cert``/``tls_key``; empty (plain HTTP) when unset.

    As the coordinator does (``coordinator/runtime.py``), the context comes from
    :func:`common.crypto.server_ssl_context` (TLS 1.2 floor, forward-secret AEAD suites), not uvicorn's
    defaults. The files are read once here, so a wrong path or a key that does not match is a
    ConfigError at start-up.
    """
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    try:
        cert_pem, key_pem = settings.tls_cert.read_bytes(), settings.tls_key.read_bytes()
    except OSError as exc:
        raise ConfigError(detail=f"cannot read the TLS certificate or key ({type(exc).__name__})") from None
    server_ssl_context(cert_pem, key_pem)  # ConfigError when they do not load or do not match

    def context(_config: object, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return server_ssl_context(cert_pem, key_pem)

    return {
        "ssl_certfile": str(settings.tls_cert),
        "ssl_keyfile": str(settings.tls_key),
        "ssl_context_factory": context,
    }


def start_receipt_sender(settings: NodeSettings, audit: AuditLog, identity: NodeIdentity) -> ReceiptSender:
    """Record the node's identity key in the audit chain and send chain-head receipts every interval."""
    from node.coordinator_client import CoordinatorClient

    audit.record_enrolment(
        node_id=str(identity.node_id), identity_public_key=identity.signing_key.public_key().to_text()
    )
    client = CoordinatorClient(identity, proxy=settings.coordinator_proxy, timeout=30)
    return ReceiptSender(audit.engine, identity, client, interval_s=settings.audit_receipt_interval_s).start()
