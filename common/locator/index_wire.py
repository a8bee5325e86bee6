"""Wire models of the patient index (``/index/v1/...``), shared by the publishing node and the coordinator.

A node publishes, per record, the opaque reference it chose and the record's tokens under the network
linkage key (variant name and 64 hex digits each); the coordinator re-keys them before it stores
anything. A lookup sends probe tokens and gets back only ``(node, record ref, MATCH|POSSIBLE)`` for
records held by *other* nodes: never a token, a score or a demographic value.

Bounds keep one request small (a node publishes in batches of :data:`MAX_RECORDS`), and a reference
is at most 64 URL-safe characters, so it can never carry a name or a medical record number by
accident of formatting (the node makes it random; see ``node/linkage/records.py``).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_LOOKUP_TOKENS",
    "MAX_RECORDS",
    "MAX_TOKENS_PER_RECORD",
    "REF_PATTERN",
    "Decision",
    "LookupHit",
    "LookupRequest",
    "LookupResponse",
    "PublishRequest",
    "PublishResponse",
    "PublishedRecord",
    "WireToken",
    "WithdrawRequest",
    "WithdrawResponse",
]

MAX_RECORDS = 500
MAX_TOKENS_PER_RECORD = 256
MAX_LOOKUP_TOKENS = 512
REF_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
_HEX64 = r"^[0-9a-f]{64}$"


class Decision(StrEnum):
    """What a lookup says about one record (the same words as :class:`common.linkage.Decision`)."""

    MATCH = "MATCH"
    POSSIBLE = "POSSIBLE"


class WireToken(BaseModel):
    """One token: its variant's name and its value as 64 lower-case hex digits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: str = Field(min_length=1, max_length=200)
    value: str = Field(pattern=_HEX64)

    def __repr__(self) -> str:
        return f"WireToken(variant={self.variant!r})"


class PublishedRecord(BaseModel):
    """One record's full token family: it replaces whatever the index held for this reference."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(pattern=REF_PATTERN)
    tokens: list[WireToken] = Field(min_length=1, max_length=MAX_TOKENS_PER_RECORD)


class PublishRequest(BaseModel):
    """Records to add or replace, all made under the linkage key named by ``key_id``."""

    model_config = ConfigDict(extra="forbid")

    key_id: str = Field(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")
    records: list[PublishedRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class PublishResponse(BaseModel):
    """How many records were stored, and how many were kept out because their person opted out elsewhere."""

    stored: int
    suppressed: int


class WithdrawRequest(BaseModel):
    """References to remove. ``person``: the patient opted out, so every record of that person goes.

    With ``person`` the coordinator also removes the records of other nodes in the same person cluster
    and keeps later publications of that person out, until this node publishes the reference again.
    """

    model_config = ConfigDict(extra="forbid")

    refs: list[str] = Field(min_length=1, max_length=MAX_RECORDS)
    person: bool = False


class WithdrawResponse(BaseModel):
    """How many index records were removed (with ``person``, other nodes' included)."""

    withdrawn: int


class LookupRequest(BaseModel):
    """Probe tokens of one patient (the record's own and its query-side probes, mixed)."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[WireToken] = Field(min_length=1, max_length=MAX_LOOKUP_TOKENS)


class LookupHit(BaseModel):
    """One record another node holds: which node, its reference there, and the decision."""

    node: str
    ref: str
    decision: Decision


class LookupResponse(BaseModel):
    """The hits, MATCH first."""

    hits: list[LookupHit]
