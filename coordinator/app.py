"""The coordinator's web application: ``create_app(settings)``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from coordinator.api.errors import install_error_handlers
from coordinator.api.limits import BodyLimit
from coordinator.api.routes import health, nodes
from coordinator.config import CoordinatorSettings
from coordinator.store.db import make_engine

__all__ = ["create_app"]


def _version() -> str:
    try:
        return version("medfed")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def create_app(settings: CoordinatorSettings) -> FastAPI:
    """Build the coordinator's API over the database the settings name (migrated beforehand)."""
    app = FastAPI(
        title="medfed coordinator",
        version=_version(),
        docs_url=None,  # nothing public beyond /healthz
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.sqlalchemy_url)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.include_router(health.router)
    app.include_router(nodes.router)
    return app
