"""OperationOutcome for every FHIR error: the catalog message and safe hints, never input values."""

from __future__ import annotations

from typing import Any

from common.errors import ErrorCode, MedfedError

__all__ = ["operation_outcome"]

# FHIR issue-type codes (http://hl7.org/fhir/issue-type) per medfed error code.
_ISSUE_CODE: dict[ErrorCode, str] = {
    ErrorCode.MALFORMED_JSON: "structure",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "not-supported",
    ErrorCode.UNKNOWN_RESOURCE_TYPE: "not-supported",
    ErrorCode.INVALID_RESOURCE: "invalid",
    ErrorCode.INVALID_BUNDLE: "invalid",
    ErrorCode.INVALID_SEARCH: "invalid",
    ErrorCode.INVALID_REQUEST: "invalid",
    ErrorCode.PAYLOAD_TOO_LARGE: "too-long",
    ErrorCode.UNAUTHENTICATED: "login",
    ErrorCode.FORBIDDEN: "forbidden",
    ErrorCode.NOT_FOUND: "not-found",
    ErrorCode.GONE: "deleted",
    ErrorCode.VERSION_CONFLICT: "conflict",
    ErrorCode.PRECONDITION_FAILED: "multiple-matches",
    ErrorCode.CONFLICT: "conflict",
    ErrorCode.METHOD_NOT_ALLOWED: "not-supported",
}


def operation_outcome(error: MedfedError) -> dict[str, Any]:
    """An R4 OperationOutcome for ``error``: one issue for the message, one per hint."""
    code = _ISSUE_CODE.get(error.code, "exception")
    severity = "fatal" if error.status >= 500 else "error"
    issues: list[dict[str, Any]] = [
        {
            "severity": severity,
            "code": code,
            "details": {
                "coding": [{"system": "urn:medfed:error", "code": str(error.code)}],
                "text": error.public_message,
            },
        }
    ]
    issues += [{"severity": severity, "code": code, "diagnostics": hint} for hint in error.hints]
    return {"resourceType": "OperationOutcome", "issue": issues}
