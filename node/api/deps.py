"""Request dependencies as named aliases, so routes stay thin."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.errors import AccessError, ErrorCode
from node.config import NodeSettings
from node.fhir.service import FhirService
from node.store.tokens import Principal, Role, authenticate

__all__ = ["Admin", "Reader", "ServiceDep", "SettingsDep"]


def _service(request: Request) -> FhirService:
    service: FhirService = request.app.state.service
    return service


def _settings(request: Request) -> NodeSettings:
    settings: NodeSettings = request.app.state.settings
    return settings


def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    principal = authenticate(request.app.state.engine, token.strip() if scheme.lower() == "bearer" else None)
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
