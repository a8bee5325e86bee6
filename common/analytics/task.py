"""An analysis task as it travels over the Grid: what node and coordinator agree on, field by field.

A federated ``analysis`` job asks every selected node the same :class:`AnalysisTask` (which analysis,
its parameters, the source, the columns the job may read, the cohort) and, step by step, the
coordinator's requests. This module fixes that wire format in one place:

* **instruction**: a Flower ``query`` whose ``RecordDict`` holds one ``ConfigRecord`` named
  :data:`RECORD` with ``task`` (the task as canonical JSON), ``request`` (the step's request as JSON;
  ``null`` for a one-round analysis) and ``server-round`` (the step, from 1);
* **reply**: a ``ConfigRecord`` :data:`RECORD` with ``partial`` (JSON), ``snapshot`` (the id of the data
  the node pinned for the job) and ``disclosure`` (JSON: the rules the node applied before release);
* **refusal**: a Flower error reply with code :data:`ANALYSIS_ERROR_CODE` whose reason is JSON
  ``{"code": <ErrorCode>, "hints": [...]}``: a catalog code and location-only hints, never a value.

JSON is Python's (``allow_nan=False``), not orjson: orjson writes NaN as ``null`` silently, and a float
must cross exactly (``repr`` round-trips every double).

A task may carry :class:`TaskPrivacy`: the study and the researcher an epsilon ledger charges, the
job's differential-privacy request and whether counts travel under secure aggregation (both only for
the analyses in :data:`PRIVATE_ANALYSES`). The researcher is the job's submitter as the coordinator
knows it; the coordinator writes it into the task it sends (a researcher cannot choose it), and the
trust issue will have the researcher sign the spec so that a node need not take the coordinator's
word for it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from common.analytics.cohort import Cohort, Source, check_cohort_columns, dump_cohort, parse_cohort
from common.analytics.params import AnalysisModel
from common.analytics.registry import ANALYSES, Iterative, OneShot
from common.errors import CATALOG, ErrorCode, InputError, MedfedError

__all__ = [
    "ANALYSIS_ERROR_CODE",
    "PRIVATE_ANALYSES",
    "RECORD",
    "AnalysisTask",
    "DpRequest",
    "TaskPrivacy",
    "decode_refusal",
    "encode_refusal",
    "from_wire",
    "parse_task",
    "to_wire",
]

RECORD: Final[str] = "analysis"
"""The name of the ConfigRecord that carries the task, request and reply."""
TASK_KEY: Final[str] = "task"
REQUEST_KEY: Final[str] = "request"
ROUND_KEY: Final[str] = "server-round"
PARTIAL_KEY: Final[str] = "partial"
SNAPSHOT_KEY: Final[str] = "snapshot"
DISCLOSURE_KEY: Final[str] = "disclosure"
ANALYSIS_ERROR_CODE: Final[int] = 110
"""Flower error code of an analysis refused by a node (clear of Flower's 0-8 and medfed's 100-104)."""

_MAX_HINTS = 8
_MAX_HINT_LENGTH = 300

PRIVATE_ANALYSES: Final[frozenset[str]] = frozenset(("count", "histogram", "crosstab"))
"""The analyses that take differential privacy and secure aggregation: integer counts, each record in
a known number of cells (sensitivity from the parameters, never from the data)."""


class DpRequest(AnalysisModel):
    """A job's differential-privacy request: record-level, one mechanism, the epsilon (and delta) it spends."""

    mechanism: Literal["laplace", "gaussian"] = "laplace"
    epsilon: float = Field(gt=0, le=100)
    delta: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _delta_fits_mechanism(self) -> DpRequest:
        if self.mechanism == "gaussian" and self.delta == 0:
            raise ValueError("the gaussian mechanism needs delta > 0")
        if self.mechanism == "laplace" and self.delta != 0:
            raise ValueError("the laplace mechanism is pure epsilon-DP: delta must be 0")
        return self


class TaskPrivacy(AnalysisModel):
    """Who is charged and how counts are protected in transit (see the module docstring)."""

    study: str | None = Field(default=None, min_length=1, max_length=200)
    researcher: str | None = Field(default=None, min_length=1, max_length=200)
    job: str | None = Field(default=None, min_length=1, max_length=200)
    dp: DpRequest | None = None
    secure_aggregation: bool = False

    @model_validator(mode="after")
    def _dp_names_a_study(self) -> TaskPrivacy:
        if self.dp is not None and self.study is None:
            raise ValueError("differential privacy is charged to a study: name it")
        return self


class AnalysisTask(AnalysisModel):
    """One analysis over one source: the part of a job spec every node receives."""

    analysis: str = Field(min_length=1, max_length=64)
    params: dict[str, Any]
    source: Source
    columns: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=1000)
    cohort: dict[str, Any] | None = None
    privacy: TaskPrivacy | None = None

    @field_validator("columns")
    @classmethod
    def _distinct(cls, columns: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if columns is not None and (len(set(columns)) != len(columns) or not all(columns)):
            raise ValueError("columns must be distinct and non-empty")
        return columns

    @property
    def definition(self) -> OneShot | Iterative:
        """The analysis' functions (see :mod:`common.analytics.registry`)."""
        return ANALYSES[self.analysis]

    def parsed_params(self) -> BaseModel:
        """The analysis parameters as their model (already validated by :func:`parse_task`)."""
        return self.definition.params.model_validate(self.params)

    def parsed_cohort(self) -> Cohort | None:
        """The cohort as its model (already validated by :func:`parse_task`)."""
        return None if self.cohort is None else parse_cohort(self.cohort)

    def wire(self) -> str:
        """Canonical JSON (sorted keys): equal tasks, equal text."""
        return to_wire(self.model_dump(mode="json", exclude_none=True))

    def digest(self) -> str:
        """SHA-256 of :meth:`wire`: names the task in a node's pinned state."""
        return hashlib.sha256(self.wire().encode()).hexdigest()

    def query(self) -> dict[str, Any]:
        """The question asked, without who asked it or in which job: what a repeat must match exactly."""
        document = self.model_dump(mode="json", exclude_none=True)
        privacy = document.get("privacy")
        if isinstance(privacy, dict):
            privacy.pop("researcher", None)
            privacy.pop("job", None)
        return document


def parse_task(raw: Any) -> AnalysisTask:
    """The task of ``raw`` with its parameters and cohort normalised; InputError with location hints.

    Parameters are validated by the analysis' own model and stored with its defaults spelt out, so
    every node computes the same thing and the task digest does not depend on how it was phrased.
    """
    try:
        task = AnalysisTask.model_validate(raw)
    except ValidationError as exc:
        hints = [
            ".".join(str(part) for part in err["loc"]) + f": {err['type']}" for err in exc.errors(include_input=False)
        ]
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="invalid analysis task", hints=hints[:_MAX_HINTS]) from None
    definition = ANALYSES.get(task.analysis)
    if definition is None:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS,
            detail="unknown analysis",
            hints=[f"analysis: one of {', '.join(sorted(ANALYSES))}"],
        )
    try:
        params = definition.params.model_validate(task.params)
    except ValidationError as exc:
        hints = [
            "params." + ".".join(str(part) for part in err["loc"]) + f": {err['type']}"
            for err in exc.errors(include_input=False)
        ]
        raise InputError(ErrorCode.INVALID_ANALYSIS, detail="invalid analysis parameters", hints=hints[:8]) from None
    privacy = task.privacy
    protected = privacy is not None and (privacy.dp is not None or privacy.secure_aggregation)
    if protected and task.analysis not in PRIVATE_ANALYSES:
        raise InputError(
            ErrorCode.INVALID_ANALYSIS,
            detail="differential privacy or secure aggregation asked of an analysis that does not take it",
            hints=[f"privacy: only for {', '.join(sorted(PRIVATE_ANALYSES))}"],
        )
    cohort = None if task.cohort is None else parse_cohort(task.cohort)
    if cohort is not None and task.columns is not None:
        check_cohort_columns(cohort, task.columns)
    return task.model_copy(
        update={
            "params": params.model_dump(mode="json"),
            "cohort": None if cohort is None else dump_cohort(cohort),
        }
    )


def to_wire(value: Any) -> str:
    """JSON text of a JSON-shaped value (or pydantic model); ValueError for NaN or infinity."""
    payload = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return json.dumps(payload, allow_nan=False, sort_keys=True, separators=(",", ":"))


def from_wire(text: str) -> Any:
    """The value of JSON text (NaN and infinity refused)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"non-finite number {constant} in analysis JSON")

    return json.loads(text, parse_constant=refuse)


def encode_refusal(error: MedfedError) -> str:
    """The reason text of a node's refusal: its code and hints (public by construction)."""
    return to_wire({"code": str(error.code), "hints": [str(hint) for hint in error.hints[:_MAX_HINTS]]})


def decode_refusal(reason: str) -> tuple[ErrorCode, tuple[str, ...]]:
    """The code and hints of a refusal; an unreadable reason reads as ``internal`` without hints."""
    try:
        body = from_wire(reason)
        code = ErrorCode(body["code"])
        hints = body.get("hints", [])
        if not isinstance(hints, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return ErrorCode.INTERNAL, ()
    if code not in CATALOG:
        return ErrorCode.INTERNAL, ()
    return code, tuple(str(hint)[:_MAX_HINT_LENGTH] for hint in hints[:_MAX_HINTS])
