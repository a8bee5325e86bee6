"""The node's coordinator client: requests signed over exactly what goes on the wire, errors by kind."""

from __future__ import annotations

import ssl

import httpx
import pytest

from common.crypto import SigningKey, VerifyKey, verify_request
from common.errors import AccessError, ConfigError, ConflictError, ErrorCode, InputError, InternalError, NotFoundError
from node.coordinator_client import SignedRequestAuth, error_for_response, error_for_transport


def test_requests_are_signed_over_method_raw_target_and_body() -> None:
    """The signature the auth adds verifies on the server side for the raw path with its query and the body."""
    key = SigningKey.generate()
    seen: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(
            verify_request(
                request.headers,
                method=request.method,
                path_and_query=request.url.raw_path.decode("ascii"),
                body=request.content,
                lookup_key=lambda key_id: key.public_key() if key_id == "site-a" else None,
                now=int(request.headers["x-medfed-timestamp"]),
                seen_nonce=lambda *_: False,
            )
        )
        return httpx.Response(200, json={})

    with httpx.Client(
        base_url="https://coordinator.test",
        transport=httpx.MockTransport(server),
        auth=SignedRequestAuth(key, "site-a"),
    ) as client:
        client.post("/channel/v1/reply", params={"a": "b c"}, content=b'{"x":1}')
        client.get("/channel/v1/ca")
    assert seen == ["site-a", "site-a"]


def test_a_signature_does_not_verify_for_another_body() -> None:
    """Headers signed for one body are refused for another (the server hashes what arrived)."""
    key = SigningKey.generate()
    request = httpx.Request("POST", "https://coordinator.test/channel/v1/whoami", content=b"{}")
    flow = SignedRequestAuth(key, "site-a").auth_flow(request)
    signed = next(flow)
    verify_key: VerifyKey = key.public_key()
    with pytest.raises(AccessError):
        verify_request(
            signed.headers,
            method="POST",
            path_and_query="/channel/v1/whoami",
            body=b'{"x":1}',
            lookup_key=lambda _: verify_key,
            now=int(signed.headers["x-medfed-timestamp"]),
            seen_nonce=lambda *_: False,
        )


def _answer(status: int, body: object = None, text: str = "") -> httpx.Response:
    if body is not None:
        return httpx.Response(status, json=body)
    return httpx.Response(status, text=text)


@pytest.mark.parametrize(
    ("response", "error_class", "code"),
    [
        (_answer(401, {"error": {"code": "unauthenticated", "message": "m"}}), AccessError, ErrorCode.UNAUTHENTICATED),
        (_answer(403, text="<html>proxy says no</html>"), AccessError, ErrorCode.FORBIDDEN),
        (_answer(404, text="nope"), NotFoundError, ErrorCode.NOT_FOUND),
        (_answer(409, {"error": {"code": "conflict", "message": "m"}}), ConflictError, ErrorCode.CONFLICT),
        (_answer(400, {"error": {"code": "invalid_request", "message": "m"}}), InputError, ErrorCode.INVALID_REQUEST),
        (_answer(400, {"error": {"code": "made_up", "message": "m"}}), InputError, ErrorCode.INVALID_REQUEST),
        (
            _answer(503, {"error": {"code": "internal", "message": "m"}}),
            InternalError,
            ErrorCode.COORDINATOR_UNAVAILABLE,
        ),
        (_answer(502, text="bad gateway"), InternalError, ErrorCode.COORDINATOR_UNAVAILABLE),
    ],
)
def test_answers_map_to_errors_by_kind(response: httpx.Response, error_class: type[Exception], code: ErrorCode) -> None:
    """Refusals keep their code and class; any 5xx (coordinator or proxy) is COORDINATOR_UNAVAILABLE."""
    error = error_for_response(response)
    assert type(error) is error_class
    assert error.code is code


def test_transport_failures_are_unavailable_except_a_certificate_that_fails_the_pin() -> None:
    """A refused connection or timeout is COORDINATOR_UNAVAILABLE (503); a certificate verify failure is ConfigError."""
    for failure in (httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.ProxyError("407")):
        error = error_for_transport(failure)
        assert (type(error), error.code, error.status) == (InternalError, ErrorCode.COORDINATOR_UNAVAILABLE, 503)
    pinned = httpx.ConnectError("tls")
    pinned.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    assert isinstance(error_for_transport(pinned), ConfigError)
