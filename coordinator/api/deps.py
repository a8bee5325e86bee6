"""Request dependencies as named aliases, so routes stay thin.

Roles: ``admin`` runs the network; ``observer`` watches it (nodes, jobs, rounds) and changes
nothing; ``researcher`` submits jobs and reads their results. The operational view of the nodes
(online state, versions, clock skew) is for admins and observers, not researchers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from common.errors import AccessError, ErrorCode
from coordinator.config import CoordinatorSettings
from coordinator.store.tokens import Principal, Role, authenticate

__all__ = ["Admin", "Authenticated", "EngineDep", "NetworkViewer", "SettingsDep"]


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _settings(request: Request) -> CoordinatorSettings:
    settings: CoordinatorSettings = request.app.state.settings
    return settings


def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    principal = authenticate(request.app.state.engine, token=token.strip() if scheme.lower() == "bearer" else None)
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
