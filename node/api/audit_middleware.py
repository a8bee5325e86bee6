"""Audit every call made with a token: who, which route, which resource, the status, how many results.

Calls are entries of the node's audit chain (:class:`node.audit.AuditLog`): ``fhir.access`` for the
FHIR API, ``api.call`` for the rest. The resource a call touched goes in as a subject, so the chain
holds its pseudonym and only the node's own table column keeps the plain reference; a resource type
that is not an R4 type (a mistyped or hostile path) is recorded as ``unknown``, never as sent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from node.audit import AuditLog, token_actor
from node.fhir.resource_types import R4_RESOURCE_TYPES
from node.store.tokens import Principal

__all__ = ["audit_calls"]

log = logging.getLogger("medfed.node.audit")


def _resource(request: Request) -> tuple[str | None, str | None]:
    """The (resource type, ``Type/id`` reference) a call touched, as far as its path and route say."""
    path_params: dict[str, str] = request.scope.get("path_params", {})
    resource_type = path_params.get("resource_type") or ("Patient" if "$everything" in request.url.path else None)
    resource_id = path_params.get("resource_id") or getattr(request.state, "resource_id", None)
    if resource_type is not None and resource_type not in R4_RESOURCE_TYPES:
        return "unknown", None
    reference = f"{resource_type}/{resource_id}" if resource_type and resource_id else None
    return resource_type, reference


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
            resource_type, reference = _resource(request)
            audit: AuditLog = request.app.state.audit_log
            try:
                await run_in_threadpool(
                    audit.api_call,
                    actor=token_actor(principal.token_id, str(principal.role)),
                    action=route.name if isinstance(route, Route) else "unknown",
                    status=status,
                    resource_type=resource_type,
                    resource_ref=reference,
                    result_count=getattr(request.state, "result_count", None),
                )
            except Exception:
                log.exception("could not write the access audit")
                raise
