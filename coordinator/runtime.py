"""Running a coordinator: preparing its data directory and database, and serving its API with uvicorn."""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from common.errors import ConfigError
from common.logs import configure_logging
from coordinator.config import CoordinatorSettings
from coordinator.store.db import make_engine
from coordinator.store.migrate import current_revision, head_revision, upgrade

__all__ = ["init_coordinator", "open_engine", "serve"]

log = logging.getLogger("medfed.coordinator")


def init_coordinator(settings: CoordinatorSettings) -> tuple[Engine, str]:
    """Create the data directory (mode 0700) and bring the database to the current schema (idempotent).

    Returns the engine and the schema revision. The trust step extends this to create the
    coordinator's signing key and TLS certificate in the same directory.
    """
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.data_dir.chmod(0o700)  # the database holds token hashes and, later, keys
    except OSError as exc:
        raise ConfigError(detail=f"cannot create the data directory ({type(exc).__name__})") from exc
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


def serve(settings: CoordinatorSettings) -> None:
    """Migrate if needed and serve the API (plain HTTP for now) until interrupted."""
    # Imported here: the web stack is only needed to serve, not by init/token/enrol-code commands.
    import uvicorn

    from coordinator.app import create_app

    configure_logging(settings.log_level)
    engine, _ = init_coordinator(settings)
    engine.dispose()
    app = create_app(settings)
    log.info("coordinator API listening", extra={"fields": {"host": settings.host, "port": settings.port}})
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
