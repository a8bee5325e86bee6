"""A bound on request bodies (``max_request_bytes``), checked before a route reads anything.

A declared ``Content-Length`` over the bound is answered 413 at once; a body without one is counted
as it streams, and reading past the bound raises the same 413 inside the route.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import ErrorCode, MedfedError
from coordinator.api.errors import error_response

__all__ = ["BodyLimit"]


class BodyLimit:
    """ASGI middleware: refuse HTTP request bodies larger than ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(MedfedError(ErrorCode.PAYLOAD_TOO_LARGE))(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise StarletteHTTPException(413)
            return message

        await self.app(scope, counting_receive, send)
