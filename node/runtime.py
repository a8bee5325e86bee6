"""Running a node: preparing its data directory and database, and serving its API with uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import Engine

from common.errors import ConfigError
from common.logs import configure_logging
from common.net import listening_socket
from node.config import NodeSettings
from node.fhir.service import FhirService
from node.identity import NodeIdentity
from node.store.db import make_engine
from node.store.migrate import current_revision, head_revision, upgrade

__all__ = ["init_node", "open_service", "serve"]

log = logging.getLogger("medfed.node")


def init_node(settings: NodeSettings) -> tuple[Engine, str]:
    """Create the data directory and bring the database to the current schema (idempotent)."""
    data_dir: Path = settings.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)  # the database holds patient data
    except OSError as exc:
        raise ConfigError(detail=f"cannot create the data directory ({type(exc).__name__})") from exc
    engine = make_engine(settings.sqlalchemy_url)
    upgrade(engine)
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
    runner = None
    if NodeIdentity.load(settings.data_dir) is not None:
        # Imported only on enrolled nodes: it brings torch and flwr, which a plain FHIR node does not need.
        from node.federation.service import start_federation

        runner = start_federation(settings, app.state.service)
    log.info("node API listening", extra={"fields": {"host": settings.host, "port": settings.port}})
    listener = listening_socket(settings.host, settings.port)
    try:
        uvicorn.run(app, fd=listener.fileno(), log_config=None, access_log=False)
    finally:
        listener.close()
        if runner is not None:
            runner.stop()
