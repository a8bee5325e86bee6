"""The one error model of medfed.

Every error raised on purpose is a :class:`MedfedError` with an :class:`ErrorCode`. The public message
of each code lives in :data:`CATALOG`, so what leaves a process is always a fixed sentence chosen by
us. The ``detail`` of an error is for the local log only; ``hints`` are extra public strings that the
raiser builds from *locations and rule names only* (``entry[3].resource.status: missing``), never
from submitted values, because on a hospital node a submitted value can be patient data.

Tree::

    MedfedError
    ├── ConfigError          a setting or file the operator controls is wrong (CLI exit code 3)
    ├── InputError           the request or file is wrong; the caller can fix it (4xx)
    ├── AccessError          missing, unknown or insufficient credentials (401/403)
    ├── NotFoundError        the thing asked for does not exist or is gone (404/410)
    ├── ConflictError        the request conflicts with the current state (409/412)
    └── InternalError        a bug or an unavailable dependency (500/503)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CATALOG",
    "AccessError",
    "CatalogEntry",
    "ConfigError",
    "ConflictError",
    "ErrorCode",
    "InputError",
    "InternalError",
    "MedfedError",
    "NotFoundError",
]


class ErrorCode(StrEnum):
    """Stable machine-readable error codes; clients may switch on them."""

    CONFIG_INVALID = "config_invalid"
    MALFORMED_JSON = "malformed_json"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNKNOWN_RESOURCE_TYPE = "unknown_resource_type"
    INVALID_RESOURCE = "invalid_resource"
    INVALID_BUNDLE = "invalid_bundle"
    INVALID_SEARCH = "invalid_search"
    INVALID_REQUEST = "invalid_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    GONE = "gone"
    VERSION_CONFLICT = "version_conflict"
    PRECONDITION_FAILED = "precondition_failed"
    CONFLICT = "conflict"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INTERNAL = "internal"
    COORDINATOR_UNAVAILABLE = "coordinator_unavailable"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """The public face of an error code: its HTTP status and fixed message."""

    status: int
    message: str


CATALOG: dict[ErrorCode, CatalogEntry] = {
    ErrorCode.CONFIG_INVALID: CatalogEntry(500, "The service is misconfigured."),
    ErrorCode.MALFORMED_JSON: CatalogEntry(400, "The request body is not well-formed JSON."),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: CatalogEntry(415, "Send application/fhir+json or application/json."),
    ErrorCode.UNKNOWN_RESOURCE_TYPE: CatalogEntry(404, "This resource type is not supported."),
    ErrorCode.INVALID_RESOURCE: CatalogEntry(422, "The resource is not valid FHIR R4."),
    ErrorCode.INVALID_BUNDLE: CatalogEntry(400, "The Bundle cannot be processed."),
    ErrorCode.INVALID_SEARCH: CatalogEntry(400, "The search request is not valid."),
    ErrorCode.INVALID_REQUEST: CatalogEntry(400, "The request is not valid."),
    ErrorCode.PAYLOAD_TOO_LARGE: CatalogEntry(413, "The request is larger than this server accepts."),
    ErrorCode.UNAUTHENTICATED: CatalogEntry(401, "A valid bearer token is required."),
    ErrorCode.FORBIDDEN: CatalogEntry(403, "This token may not do that."),
    ErrorCode.NOT_FOUND: CatalogEntry(404, "Not found."),
    ErrorCode.GONE: CatalogEntry(410, "The resource has been deleted."),
    ErrorCode.VERSION_CONFLICT: CatalogEntry(412, "The resource has changed since that version."),
    ErrorCode.PRECONDITION_FAILED: CatalogEntry(412, "The condition matched more than one resource."),
    ErrorCode.CONFLICT: CatalogEntry(409, "The request conflicts with the current state."),
    ErrorCode.METHOD_NOT_ALLOWED: CatalogEntry(405, "This operation is not supported here."),
    ErrorCode.INTERNAL: CatalogEntry(500, "Internal error."),
    # Raised on a node when the coordinator cannot be reached (connection, proxy, timeout, 5xx): worth
    # retrying, unlike a refusal (401), which the channel must not retry as if it were transient.
    ErrorCode.COORDINATOR_UNAVAILABLE: CatalogEntry(503, "The coordinator cannot be reached; try again later."),
}


class MedfedError(Exception):
    """Base of every deliberate medfed error; carries a code, a local detail and public hints."""

    default_code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        code: ErrorCode | None = None,
        *,
        detail: str = "",
        hints: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.code = code or self.default_code
        self.detail = detail
        self.hints = tuple(hints)
        super().__init__(f"{self.code}: {detail}" if detail else str(self.code))

    @property
    def public_message(self) -> str:
        """The fixed sentence for this code; safe to send anywhere."""
        return CATALOG[self.code].message

    @property
    def status(self) -> int:
        """The HTTP status this error maps to."""
        return CATALOG[self.code].status


class ConfigError(MedfedError):
    """A setting, key or file that the operator controls is wrong."""

    default_code = ErrorCode.CONFIG_INVALID


class InputError(MedfedError):
    """The request or the input file is wrong; the caller can fix it."""

    default_code = ErrorCode.INVALID_REQUEST


class AccessError(MedfedError):
    """Credentials are missing, unknown or not sufficient."""

    default_code = ErrorCode.UNAUTHENTICATED


class NotFoundError(MedfedError):
    """The thing asked for does not exist, or no longer exists."""

    default_code = ErrorCode.NOT_FOUND


class ConflictError(MedfedError):
    """The request conflicts with the current state (version, uniqueness)."""

    default_code = ErrorCode.CONFLICT


class InternalError(MedfedError):
    """A bug or an unavailable dependency; the detail goes to the local log only."""

    default_code = ErrorCode.INTERNAL
