"""The node's web application: ``create_app(settings)``."""

from __future__ import annotations

from fastapi import FastAPI

from node.api.audit_middleware import audit_calls
from node.api.errors import install_error_handlers
from node.api.routes import fhir, health
from node.config import NodeSettings
from node.fhir.service import FhirService
from node.store.db import make_engine

__all__ = ["create_app"]


def create_app(settings: NodeSettings) -> FastAPI:
    """Build the node's API over the database the settings name (migrated beforehand)."""
    app = FastAPI(
        title="medfed node",
        version=fhir.VERSION,
        docs_url=None,  # no public pages beyond /healthz and /fhir/metadata
        redoc_url=None,
        openapi_url=None,
    )
    engine = make_engine(settings.sqlalchemy_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.service = FhirService(engine, default_count=settings.default_page_size, max_count=settings.max_page_size)
    install_error_handlers(app)
    app.middleware("http")(audit_calls)
    app.include_router(health.router)
    app.include_router(fhir.router)
    return app
