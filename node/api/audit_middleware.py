"""Audit every call made with a token: who, which route, which resource, the status, how many results."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from node.store.audit import AuditEvent, record
from node.store.tokens import Principal

__all__ = ["audit_calls"]

log = logging.getLogger("medfed.node.audit")


async def audit_calls(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """HTTP middleware: record the call after the response status is known."""
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is not None:
            route = request.scope.get("route")
            path_params: dict[str, str] = request.scope.get("path_params", {})
            event = AuditEvent(
                token_id=principal.token_id,
                role=str(principal.role),
                action=route.name if isinstance(route, Route) else "unknown",
                resource_type=path_params.get("resource_type")
                or ("Patient" if "$everything" in request.url.path else None),
                resource_id=path_params.get("resource_id") or getattr(request.state, "resource_id", None),
                status=status,
                result_count=getattr(request.state, "result_count", None),
            )
            try:
                await run_in_threadpool(record, request.app.state.engine, event)
            except Exception:
                log.exception("could not write the access audit")
                raise
