"""The one place the coordinator maps errors to HTTP.

Locally: the code and detail are logged. To the caller: ``{"error": {"code", "message"}}`` with the
catalog message (the node's error model, without its FHIR branch). FastAPI's default 422 handler
echoes the rejected input, so it is replaced by one that names field locations and error types only.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import ErrorCode, InputError, InternalError, MedfedError

__all__ = ["error_body", "error_response", "install_error_handlers"]

log = logging.getLogger("medfed.coordinator.api")

_STATUS_CODES = {
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


def error_body(error: MedfedError) -> bytes:
    """The JSON body for ``error``: its code and the catalog's public message, nothing else."""
    return orjson.dumps({"error": {"code": str(error.code), "message": error.public_message}})


def error_response(error: MedfedError) -> Response:
    """Render ``error`` as a response."""
    headers = {"WWW-Authenticate": "Bearer"} if error.code is ErrorCode.UNAUTHENTICATED else None
    return Response(error_body(error), status_code=error.status, media_type="application/json", headers=headers)


async def _medfed_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MedfedError)
    log.info(
        "request refused",
        extra={"fields": {"code": str(exc.code), "status": exc.status, "detail": exc.detail}},
    )
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    hints = [
        ".".join(str(part) for part in err.get("loc", ()) if isinstance(part, str | int)) + f": {err.get('type')}"
        for err in exc.errors()
    ]
    return await _medfed_error(request, InputError(ErrorCode.INVALID_REQUEST, hints=hints[:20]))


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(MedfedError(_STATUS_CODES.get(exc.status_code, ErrorCode.INVALID_REQUEST)))


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc, extra={"fields": {"exc_type": type(exc).__name__}})
    return error_response(InternalError())


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(MedfedError, _medfed_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
