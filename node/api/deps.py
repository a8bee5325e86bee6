"""Request dependencies as named aliases, so routes stay thin.

Bearer tokens are checked against :class:`common.limits.AuthFailureGuard` (``app.state.auth_guard``)
before the lookup: a client address that sent too many refused tokens gets 429 for unknown tokens
without a database lookup, while tokens that authenticated before keep working (see that module).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.errors import AccessError, ErrorCode
from common.limits import AuthFailureGuard
from node.config import NodeSettings
from node.fhir.service import FhirService
from node.store.tokens import Principal, Role, authenticate

__all__ = ["Admin", "Reader", "ServiceDep", "SettingsDep", "client_address"]


def _service(request: Request) -> FhirService:
    service: FhirService = request.app.state.service
    return service


def _settings(request: Request) -> NodeSettings:
    settings: NodeSettings = request.app.state.settings
    return settings


def client_address(request: Request) -> str:
    """The peer's address (behind a reverse proxy: the proxy's, shared by everyone behind it)."""
    return request.client.host if request.client is not None else "unknown"


def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    token = presented.strip() if scheme.lower() == "bearer" else ""
    if not token:
        raise AccessError(ErrorCode.UNAUTHENTICATED)
    guard: AuthFailureGuard = request.app.state.auth_guard
    engine = request.app.state.engine
    principal = guard.authenticate(client_address(request), token, lambda presented: authenticate(engine, presented))
    request.state.principal = principal
    return principal


def _reader(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    return principal


def _admin(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
    if principal.role is not Role.ADMIN:
        raise AccessError(ErrorCode.FORBIDDEN)
    return principal


ServiceDep = Annotated[FhirService, Depends(_service)]
SettingsDep = Annotated[NodeSettings, Depends(_settings)]
Reader = Annotated[Principal, Depends(_reader)]
Admin = Annotated[Principal, Depends(_admin)]
