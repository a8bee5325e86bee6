"""The node's web application: ``create_app(settings)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from common.limits import AuthFailureGuard, TokenBucketLimiter
from node.api.audit_middleware import audit_calls
from node.api.errors import install_error_handlers
from node.api.routes import admin, fhir, health
from node.api.routes import locate as locate_routes
from node.audit import AuditLog
from node.config import NodeSettings
from node.fhir.service import FhirService
from node.locator.services import start_locator_services
from node.policy.gate import PolicyGate
from node.store.db import make_engine

__all__ = ["create_app"]


def create_app(settings: NodeSettings) -> FastAPI:
    """Build the node's API over the database the settings name (migrated beforehand).

    On an enrolled node, the patient-index publisher and the record-locator responder run while the
    app runs (its lifespan), and ``/locate`` uses their context (``app.state.locator``).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(
            start_locator_services, settings, app.state.service, chain=getattr(app.state, "audit_log", None)
        )
        app.state.locator = None if services is None else services.context
        try:
            yield
        finally:
            if services is not None:
                await run_in_threadpool(services.stop)

    app = FastAPI(
        title="medfed node",
        lifespan=lifespan,
        version=fhir.VERSION,
        docs_url=None,  # no public pages beyond /healthz and /fhir/metadata
        redoc_url=None,
        openapi_url=None,
    )
    engine = make_engine(settings.sqlalchemy_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.locator = None  # set by the lifespan on an enrolled node
    app.state.service = FhirService(engine, default_count=settings.default_page_size, max_count=settings.max_page_size)
    app.state.audit_log = AuditLog.open(engine, settings.data_dir)  # every call with a token is an entry
    app.state.policy = PolicyGate(engine, app.state.audit_log, settings.policy_path)
    app.state.auth_guard = AuthFailureGuard(
        burst=settings.auth_failure_burst, refill_per_s=settings.auth_failure_refill_per_s
    )
    app.state.locate_limiter = TokenBucketLimiter(rate_per_s=settings.locate_refill_per_s, burst=settings.locate_burst)
    install_error_handlers(app)
    app.middleware("http")(audit_calls)
    app.include_router(health.router)
    app.include_router(fhir.router)
    app.include_router(admin.router)
    app.include_router(locate_routes.router)
    return app
