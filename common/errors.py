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
    # Privacy (disclosure control, the epsilon ledger, secure aggregation).
    PRIVACY_BUDGET_EXCEEDED = "privacy_budget_exceeded"
    SECURE_AGGREGATION_FAILED = "secure_aggregation_failed"
    # SQL-on-FHIR views on the node.
    INVALID_VIEW = "invalid_view"
    # Federated analytics and tabular datasets.
    INVALID_ANALYSIS = "invalid_analysis"
    DESIGN_REFUSED = "design_refused"
    DATA_OUTSIDE_DECLARED = "data_outside_declared"
    INVALID_PARTIAL = "invalid_partial"
    INVALID_SCHEMA = "invalid_schema"
    INVALID_DATASET = "invalid_dataset"
    DATASET_EXISTS = "dataset_exists"
    # Federated analysis jobs (node release step).
    ANALYSIS_NOT_RELEASABLE = "analysis_not_releasable"
    # Patient index and record locator.
    RATE_LIMITED = "rate_limited"
    KEY_NOT_CERTIFIED = "key_not_certified"
    LINKAGE_NOT_CONFIGURED = "linkage_not_configured"
    # Federated learning jobs (the learning task a node trains on).
    INVALID_LEARNING_TASK = "invalid_learning_task"
    # Node policy: a job the node's policy refuses, or one that waits for (or was refused by) a person.
    JOB_REFUSED_BY_POLICY = "job_refused_by_policy"
    JOB_PENDING_APPROVAL = "job_pending_approval"
    JOB_APPROVAL_REJECTED = "job_approval_rejected"
    JOB_APPROVAL_TIMED_OUT = "job_approval_timed_out"
    # Signed jobs (docs/trust.md): what a node (or the coordinator, on submission) refuses before any policy.
    JOB_NOT_SIGNED = "job_not_signed"
    JOB_SIGNATURE_INVALID = "job_signature_invalid"
    JOB_SPEC_ALTERED = "job_spec_altered"
    JOB_REPLAYED = "job_replayed"
    JOB_STALE = "job_stale"
    RESEARCHER_UNKNOWN = "researcher_unknown"
    RESEARCHER_NOT_IN_STUDY = "researcher_not_in_study"
    RESEARCHER_REVOKED = "researcher_revoked"
    NODE_REVOKED = "node_revoked"
    MESSAGE_OUTSIDE_SPEC = "message_outside_spec"
    TRUST_NOT_CONFIGURED = "trust_not_configured"


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
    # Privacy: a job whose epsilon would pass the researcher's study budget or the node-wide cap is refused
    # before it runs; a secure-aggregation round that lost a participant fails and is retried without it.
    ErrorCode.PRIVACY_BUDGET_EXCEEDED: CatalogEntry(409, "The privacy budget for this query is exhausted."),
    ErrorCode.SECURE_AGGREGATION_FAILED: CatalogEntry(
        409, "The secure aggregation round cannot be completed; retry it without the missing nodes."
    ),
    # SQL-on-FHIR views on the node.
    ErrorCode.INVALID_VIEW: CatalogEntry(400, "The ViewDefinition is not valid or cannot be evaluated."),
    # Federated analytics and tabular datasets.
    ErrorCode.INVALID_ANALYSIS: CatalogEntry(400, "The analysis parameters are not valid."),
    ErrorCode.DESIGN_REFUSED: CatalogEntry(
        422, "The model is refused: its design is rank-deficient, saturated or too small."
    ),
    ErrorCode.DATA_OUTSIDE_DECLARED: CatalogEntry(422, "The data hold values outside the declared bounds or levels."),
    ErrorCode.INVALID_PARTIAL: CatalogEntry(502, "A node's reply to the analysis is malformed."),
    ErrorCode.INVALID_SCHEMA: CatalogEntry(400, "The dataset schema is not valid."),
    ErrorCode.INVALID_DATASET: CatalogEntry(422, "The dataset file does not match its declared schema."),
    ErrorCode.DATASET_EXISTS: CatalogEntry(
        409, "A dataset of this name is already registered from another file or schema; replace it explicitly."
    ),
    # Federated analysis jobs: the node's disclosure policy has no rule that releases this analysis, so
    # the node answers nothing rather than something unprotected.
    ErrorCode.ANALYSIS_NOT_RELEASABLE: CatalogEntry(
        409, "This node's disclosure policy cannot release this analysis; ask its administrator."
    ),
    # Patient index and record locator: a node past its lookup budget waits; a node whose sealing key
    # the network-admin key has not certified gets nothing sealed to it; a node without a linkage key
    # or enrolment cannot look anyone up.
    ErrorCode.RATE_LIMITED: CatalogEntry(429, "Too many requests; slow down and try again shortly."),
    ErrorCode.KEY_NOT_CERTIFIED: CatalogEntry(403, "The node's key is not certified by the network."),
    ErrorCode.LINKAGE_NOT_CONFIGURED: CatalogEntry(
        409, "This node has no linkage key or is not enrolled; ask its administrator."
    ),
    # Federated learning jobs: the task names columns, levels or a split the node's data do not have, or
    # the rows left are too few to train and evaluate on.
    ErrorCode.INVALID_LEARNING_TASK: CatalogEntry(400, "The learning task does not fit this node's data."),
    # Node policy: refusals name the deciding rule in their hints (a rule path, never a value); a job
    # that waits for a person is answered "pending" only when the node cannot keep it waiting.
    ErrorCode.JOB_REFUSED_BY_POLICY: CatalogEntry(403, "This node's policy does not allow this job."),
    ErrorCode.JOB_PENDING_APPROVAL: CatalogEntry(409, "This job is waiting for approval by the node's staff."),
    ErrorCode.JOB_APPROVAL_REJECTED: CatalogEntry(403, "The node's staff rejected this job."),
    ErrorCode.JOB_APPROVAL_TIMED_OUT: CatalogEntry(409, "This job waited too long for approval at the node."),
    # Signed jobs: a node runs only what an authorised researcher signed, whatever the coordinator says.
    ErrorCode.JOB_NOT_SIGNED: CatalogEntry(400, "The job carries no researcher's signature."),
    ErrorCode.JOB_SIGNATURE_INVALID: CatalogEntry(403, "The job's signature does not verify."),
    ErrorCode.JOB_SPEC_ALTERED: CatalogEntry(403, "The job differs from the spec its researcher signed."),
    ErrorCode.JOB_REPLAYED: CatalogEntry(409, "This signed job was already submitted under another job id."),
    ErrorCode.JOB_STALE: CatalogEntry(403, "The job's signature is too old, or dated in the future."),
    ErrorCode.RESEARCHER_UNKNOWN: CatalogEntry(403, "The researcher is not certified by this network."),
    ErrorCode.RESEARCHER_NOT_IN_STUDY: CatalogEntry(403, "The researcher is not a member of the job's study."),
    ErrorCode.RESEARCHER_REVOKED: CatalogEntry(403, "The researcher's membership has been revoked."),
    ErrorCode.NODE_REVOKED: CatalogEntry(403, "A node this request involves has been revoked from the network."),
    ErrorCode.MESSAGE_OUTSIDE_SPEC: CatalogEntry(403, "The message is outside what the job's signed spec allows."),
    ErrorCode.TRUST_NOT_CONFIGURED: CatalogEntry(
        409, "This node holds no network-admin key and runs no jobs; enrol it again."
    ),
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
