"""The one place the node maps errors to HTTP.

Locally: the code and detail are logged. To the caller: the catalog message and safe hints, as an
OperationOutcome under /fhir and as ``{"error": {"code", "message"}}`` elsewhere. FastAPI's default
422 handler echoes the rejected input, which here can be patient data, so it is replaced.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import ErrorCode, InputError, InternalError, MedfedError
from node.fhir.outcome import operation_outcome

__all__ = ["FHIR_JSON", "error_response", "install_error_handlers"]

log = logging.getLogger("medfed.node.api")
FHIR_JSON = "application/fhir+json; charset=utf-8"

_STATUS_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


def error_response(request: Request, error: MedfedError) -> Response:
    """Render ``error`` for this request's path."""
    headers = {"WWW-Authenticate": "Bearer"} if error.code is ErrorCode.UNAUTHENTICATED else None
    if request.url.path.startswith("/fhir"):
        body = orjson.dumps(operation_outcome(error))
        return Response(body, status_code=error.status, media_type=FHIR_JSON, headers=headers)
    body = orjson.dumps({"error": {"code": str(error.code), "message": error.public_message}})
    return Response(body, status_code=error.status, media_type="application/json", headers=headers)


async def _medfed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MedfedError)
    log.info(
        "request refused",
        extra={"fields": {"code": str(exc.code), "status": exc.status, "detail": exc.detail}},
    )
    return error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    hints = [
        ".".join(str(part) for part in err.get("loc", ()) if isinstance(part, str | int)) + f": {err.get('type')}"
        for err in exc.errors()
    ]
    return error_response(request, InputError(ErrorCode.INVALID_REQUEST, hints=hints[:20]))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, ErrorCode.INVALID_REQUEST)
    return error_response(request, MedfedError(code))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc, extra={"fields": {"exc_type": type(exc).__name__}})
    return error_response(request, InternalError())


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(MedfedError, _medfed_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
