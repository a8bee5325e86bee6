"""The coordinator's web application: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from common.limits import AuthFailureGuard
from coordinator.api.envelopes import Envelopes
from coordinator.api.errors import install_error_handlers
from coordinator.api.limits import BodyLimit
from coordinator.api.node_auth import NodeKeys, NoncePruner
from coordinator.api.routes import channel, enrol, health, jobs, nodes
from coordinator.api.routes import index as index_routes
from coordinator.api.routes import receipts as receipt_routes
from coordinator.api.routes import relay as relay_routes
from coordinator.config import CoordinatorSettings
from coordinator.console import routes as console_routes
from coordinator.federation.notifier import ChannelNotifier
from coordinator.federation.runner import JobRunner
from coordinator.identity import CoordinatorIdentity, identity_exists
from coordinator.store.db import make_engine

__all__ = ["create_app"]


def _version() -> str:
    try:
        return version("medfed")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def create_app(settings: CoordinatorSettings) -> FastAPI:
    """Build the coordinator's API over the database the settings name (migrated beforehand).

    The identity (``medfed coordinator init``) is loaded from the data directory when it is there;
    without it the app still serves everything but ``/channel/v1/ca`` and ``/channel/v1/enrol``,
    which answer 500 (misconfigured). While the app runs, its job runner (``app.state.runner``) runs
    jobs in worker threads; at start-up it resumes the jobs a previous process left running.
    """
    notifier = ChannelNotifier()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier.bind_loop(asyncio.get_running_loop())  # so worker threads can wake long-polls
        runner: JobRunner = app.state.runner
        runner.start()
        try:
            yield
        finally:
            runner.stop()
            index_service = getattr(app.state, "index_service", None)
            if index_service is not None:
                index_service.close()  # the lookups' own connections (PostgreSQL)

    app = FastAPI(
        title="medfed coordinator",
        lifespan=lifespan,
        version=_version(),
        docs_url=None,  # nothing public beyond /healthz and the enrolment routes
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.sqlalchemy_url)
    app.state.identity = CoordinatorIdentity.load(settings.data_dir) if identity_exists(settings.data_dir) else None
    app.state.enrol_limiter = enrol.FailureLimiter(
        max_failures=settings.enrol_max_failures, window_s=settings.enrol_failure_window_s
    )
    app.state.auth_guard = AuthFailureGuard(
        burst=settings.auth_failure_burst, refill_per_s=settings.auth_failure_refill_per_s
    )
    app.state.nonce_pruner = NoncePruner()
    app.state.node_keys = NodeKeys()
    app.state.notifier = notifier
    app.state.envelopes = Envelopes(app.state.engine)
    app.state.runner = JobRunner(
        app.state.engine,
        notifier,
        offline_after_s=settings.node_offline_after_s,
        checkpoint_budget_bytes=settings.checkpoint_budget_bytes,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.include_router(health.router)
    app.include_router(nodes.router)
    app.include_router(jobs.router)
    app.include_router(enrol.router)
    app.include_router(channel.router)
    app.include_router(receipt_routes.router)
    app.include_router(index_routes.router)
    app.include_router(relay_routes.router)
    app.include_router(console_routes.router)
    return app
