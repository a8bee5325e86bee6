"""The node's HTTPS client to its coordinator: TLS pinned to the enrolment CA, every request signed.

:class:`CoordinatorClient` wraps one ``httpx.Client``:

- TLS trusts only the CA pinned at enrolment (:func:`common.crypto.client_ssl_context`), never the
  system's CAs, and checks the coordinator's hostname against its certificate;
- every request carries the ``X-Medfed-*`` signature headers of :func:`common.crypto.sign_request`
  (key id = node id) over the method, the raw request target and the body, added by
  :class:`SignedRequestAuth`, an ``httpx.Auth`` that runs after the body is final;
- hospital networks reach the outside through proxies: an explicit ``proxy`` URL wins; without one,
  httpx's standard environment handling applies (``HTTPS_PROXY``/``ALL_PROXY``, ``NO_PROXY``). HTTPS
  goes through the proxy as a CONNECT tunnel, so the proxy sees neither the content nor the signatures.

Errors are MedfedErrors the channel's retry logic can tell apart:

- the coordinator cannot be reached (connection refused, DNS, proxy, timeout, or a 5xx from it or a
  proxy): InternalError(COORDINATOR_UNAVAILABLE) — transient, retry with back-off;
- its certificate does not verify against the pinned CA: ConfigError — not transient; a coordinator
  that changed its CA, or someone in between, needs an operator;
- a refusal: AccessError (UNAUTHENTICATED for 401, FORBIDDEN for 403), NotFoundError, ConflictError or
  InputError, with the code the coordinator sent when it is one medfed knows.
"""

from __future__ import annotations

import ssl
import urllib.parse
import urllib.request
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from common.crypto import SigningKey, client_ssl_context, sign_request
from common.errors import (
    AccessError,
    ConfigError,
    ConflictError,
    ErrorCode,
    InputError,
    InternalError,
    MedfedError,
    NotFoundError,
)
from common.net import NO_DELAY

if TYPE_CHECKING:
    from node.identity import NodeIdentity

__all__ = ["WHOAMI_PATH", "CoordinatorClient", "SignedRequestAuth", "error_for_response", "error_for_transport"]

WHOAMI_PATH = "/channel/v1/whoami"
_MAX_ERROR_BODY = 4096
_ERROR_CLASSES: dict[ErrorCode, type[MedfedError]] = {
    ErrorCode.UNAUTHENTICATED: AccessError,
    ErrorCode.FORBIDDEN: AccessError,
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.GONE: NotFoundError,
    ErrorCode.CONFLICT: ConflictError,
    ErrorCode.VERSION_CONFLICT: ConflictError,
    ErrorCode.PRECONDITION_FAILED: ConflictError,
}
_STATUS_CODES = {
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    409: ErrorCode.CONFLICT,
}


class SignedRequestAuth(httpx.Auth):
    """Signs each request as ``key_id`` with ``key`` (method, raw path and query, body)."""

    requires_request_body = True

    def __init__(self, key: SigningKey, key_id: str) -> None:
        self._key = key
        self._key_id = key_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the four signature headers, then send."""
        request.headers.update(
            sign_request(
                self._key,
                key_id=self._key_id,
                method=request.method,
                path_and_query=request.url.raw_path.decode("ascii"),
                body=request.content,
            )
        )
        yield request


def _certificate_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def error_for_transport(exc: httpx.TransportError) -> MedfedError:
    """The MedfedError for a request that got no HTTP answer (see the module docstring)."""
    if _certificate_failure(exc):
        return ConfigError(detail="the coordinator's TLS certificate does not verify against the pinned CA")
    return InternalError(
        ErrorCode.COORDINATOR_UNAVAILABLE, detail=f"cannot reach the coordinator ({type(exc).__name__})"
    )


def error_for_response(response: httpx.Response) -> MedfedError:
    """The MedfedError for a non-2xx answer (see the module docstring)."""
    status = response.status_code
    if status >= 500:
        return InternalError(ErrorCode.COORDINATOR_UNAVAILABLE, detail=f"the coordinator answered {status}")
    code = _STATUS_CODES.get(status, ErrorCode.INVALID_REQUEST)
    try:
        sent = orjson.loads(response.content[:_MAX_ERROR_BODY])["error"]["code"]
        code = ErrorCode(sent)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        pass  # not medfed's error model (a proxy's page): the status decides
    error_class = _ERROR_CLASSES.get(code, InputError)
    return error_class(code, detail=f"the coordinator refused the request ({status} {code})")


def _environment_proxy(url: str) -> str | None:
    """The proxy that ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``url``, unless ``NO_PROXY`` exempts its host.

    Resolved here because httpx ignores the environment once a custom transport (needed for
    TCP_NODELAY) is given.
    """
    parsed = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get(parsed.scheme)
    if not chosen or urllib.request.proxy_bypass(parsed.hostname or ""):
        return None
    return chosen


class CoordinatorClient:
    """A signed, CA-pinned HTTPS client to the coordinator this node enrolled with (a context manager)."""

    def __init__(self, identity: NodeIdentity, *, proxy: str | None = None, timeout: float = 30) -> None:
        verify = client_ssl_context(identity.ca_pem)
        self._client = httpx.Client(
            base_url=identity.coordinator_url,
            verify=verify,
            auth=SignedRequestAuth(identity.signing_key, identity.node_id),
            # TCP_NODELAY: a request's headers and body go out as separate writes (see common/net.py).
            transport=httpx.HTTPTransport(
                verify=verify, proxy=proxy or _environment_proxy(identity.coordinator_url), socket_options=[NO_DELAY]
            ),
            trust_env=False,  # the environment's proxy settings are applied above
            timeout=timeout,
            follow_redirects=False,
        )

    def request_json(self, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        """Send a signed request (JSON body when ``body`` is not None) and return the decoded JSON answer."""
        content = b"" if body is None else orjson.dumps(body)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self._client.request(
                method,
                path,
                content=content,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TransportError as exc:
            raise error_for_transport(exc) from None
        if not response.is_success:
            raise error_for_response(response)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise InternalError(detail="the coordinator's answer is not JSON") from None

    def post_json(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        """POST ``body`` as JSON to ``path`` (signed) and return the decoded answer."""
        return self.request_json("POST", path, body, timeout=timeout)

    def get_json(self, path: str, *, timeout: float | None = None) -> Any:
        """GET ``path`` (signed) and return the decoded answer."""
        return self.request_json("GET", path, timeout=timeout)

    def whoami(self) -> str:
        """The node id the coordinator authenticates this node's signature as."""
        answer = self.post_json(WHOAMI_PATH, {})
        node_id = answer.get("node_id") if isinstance(answer, dict) else None
        if not isinstance(node_id, str):
            raise InternalError(detail="the coordinator's whoami answer has no node id")
        return node_id

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
