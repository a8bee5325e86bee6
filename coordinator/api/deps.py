"""Request dependencies as named aliases, so routes stay thin.

Roles: ``admin`` runs the network; ``observer`` watches it (nodes, jobs, rounds) and changes
nothing; ``researcher`` submits jobs and reads their results. The operational view of the nodes
(online state, versions, clock skew) is for admins and observers, not researchers.

Bearer tokens (and console logins) are checked against :class:`common.limits.AuthFailureGuard`
(``app.state.auth_guard``) before the lookup: a client address that sent too many refused tokens gets
429 for unknown tokens without a database lookup, while tokens that authenticated before keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from common.errors import AccessError, ErrorCode
from common.limits import AuthFailureGuard
from coordinator.config import CoordinatorSettings
from coordinator.store.tokens import Principal, Role, authenticate

__all__ = [
    "Admin",
    "Authenticated",
    "EngineDep",
    "NetworkViewer",
    "SettingsDep",
    "authenticate_token",
    "client_address",
]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _settings(request: Request) -> CoordinatorSettings:
    settings: CoordinatorSettings = request.app.state.settings
    return settings


def client_address(request: Request) -> str:
    """The peer's address (behind a reverse proxy: the proxy's, shared by everyone behind it)."""
    return request.client.host if request.client is not None else "unknown"


def authenticate_token(request: Request, token: str | None) -> Principal:
    """The principal of an API token sent with ``request``, counting refusals per client address.

    Blocking (a database lookup). Raises AccessError (401) for a missing, unknown or revoked token, and
    InputError(RATE_LIMITED) (429, no lookup) for an unknown token from an address over its budget.
    """
    if not token:
        raise AccessError(ErrorCode.UNAUTHENTICATED)
    guard: AuthFailureGuard = request.app.state.auth_guard
    engine = request.app.state.engine
    return guard.authenticate(client_address(request), token, lambda presented: authenticate(engine, token=presented))


def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    principal = authenticate_token(request, token.strip() if scheme.lower() == "bearer" else None)
    request.state.principal = principal
    return principal


def _roles(*allowed: Role) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if principal.role not in allowed:
            raise AccessError(ErrorCode.FORBIDDEN)
        return principal

    return check


EngineDep = Annotated[Engine, Depends(_engine)]
SettingsDep = Annotated[CoordinatorSettings, Depends(_settings)]
Authenticated = Annotated[Principal, Depends(_principal)]
Admin = Annotated[Principal, Depends(_roles(Role.ADMIN))]
NetworkViewer = Annotated[Principal, Depends(_roles(Role.ADMIN, Role.OBSERVER))]
