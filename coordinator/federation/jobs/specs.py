"""Job specs as submitted: one pydantic model per built-in kind, told apart by ``kind``.

A spec is a declarative JSON object, never code. The node channel reads two keys of every stored spec:
``app`` (the installed app that answers) and ``message_types`` (what that app may be asked); each kind
fixes both, so a submitter cannot widen what a job may ask of a node.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from common.analytics.task import AnalysisTask, DpRequest, parse_task
from common.errors import ErrorCode, InputError
from coordinator.federation.jobs.learning import LearningSpec

__all__ = ["AnalysisSpec", "CountSpec", "FedAvgMlpSpec", "JobSpec", "LearningSpec", "parse_spec"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    round_timeout_s: float = Field(default=30.0, gt=0, le=3600, description="How long one round may take.")


class CountSpec(_Spec):
    """A federated count of patients: one ``query`` to every eligible node; every node must answer."""

    kind: Literal["count"] = "count"
    app: Literal["count"] = "count"
    message_types: tuple[Literal["query"], ...] = ("query",)


class FedAvgMlpSpec(_Spec):
    """FedAvg of the registry's MLP on each node's tabular features."""

    kind: Literal["fedavg_mlp"] = "fedavg_mlp"
    app: Literal["fedavg_mlp"] = "fedavg_mlp"
    message_types: tuple[Literal["train"], Literal["evaluate"]] = ("train", "evaluate")
    rounds: int = Field(default=3, ge=1, le=1000)
    local_epochs: int = Field(default=1, ge=1, le=100)
    lr: float = Field(default=0.05, gt=0, le=10)
    batch_size: int = Field(default=32, ge=1, le=100_000)
    hidden: tuple[int, ...] = Field(default=(64, 64), min_length=1, max_length=8)
    in_features: int = Field(default=30, ge=1, le=10_000)
    quorum: int = Field(default=1, ge=1, le=10_000, description="Fewest valid replies a round aggregates.")
    fraction: float = Field(default=1.0, gt=0, le=1, description="Share of eligible nodes sampled per round.")

    def model_post_init(self, _context: Any) -> None:
        """Hidden widths must be positive and modest."""
        if any(width < 1 or width > 4096 for width in self.hidden):
            raise ValueError("hidden widths must be between 1 and 4096")


_TASK_FIELDS = ("analysis", "params", "source", "columns", "cohort")


class AnalysisPrivacy(BaseModel):
    """What a researcher may ask for beyond the nodes' own disclosure rules: differential privacy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dp: DpRequest | None = None


class AnalysisSpec(_Spec):
    """A federated analysis (:mod:`common.analytics`) of one source at every selected node.

    One ``query`` per node per step; every selected node must answer every step (an analysis never
    drops a node). ``nodes`` narrows the job to some of the nodes online at submission (by node id);
    ``max_rounds`` caps the steps of an iterative analysis. The task fields are validated and
    normalised as every node will read them (:func:`common.analytics.task.parse_task`).

    Privacy (``docs/privacy.md``): ``study`` names the study whose epsilon budget a node charges;
    ``privacy.dp`` asks for record-level differential privacy (``{"mechanism": "laplace"|"gaussian",
    "epsilon": x, "delta": y}``); ``secure_aggregation`` has counts added under pairwise masks so the
    coordinator sees only totals. The last two only for count, histogram and crosstab.
    """

    kind: Literal["analysis"] = "analysis"
    app: Literal["analysis"] = "analysis"
    message_types: tuple[Literal["query"], ...] = ("query",)
    analysis: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any]
    columns: tuple[str, ...] | None = None
    cohort: dict[str, Any] | None = None
    nodes: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=10_000)
    max_rounds: int = Field(default=200, ge=1, le=1000, description="The most steps the analysis may take.")
    study: str | None = Field(default=None, min_length=1, max_length=200)
    privacy: AnalysisPrivacy | None = None
    secure_aggregation: bool = False

    @model_validator(mode="before")
    @classmethod
    def _normalise_task(cls, data: Any) -> Any:
        """Parse the task as the nodes will (InputError with field locations), keep its normal form."""
        if not isinstance(data, dict) or "analysis" not in data or "source" not in data:
            return data  # pydantic reports the missing fields
        document = {key: data[key] for key in _TASK_FIELDS if key in data}
        privacy = _task_privacy(data.get("study"), data.get("privacy"), data.get("secure_aggregation"))
        if privacy is not None:
            document["privacy"] = privacy
        task = parse_task(document)
        return {**data, **task.model_dump(mode="json", exclude_none=True, exclude={"privacy"})}

    @field_validator("nodes")
    @classmethod
    def _distinct_nodes(cls, nodes: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if nodes is not None and len(set(nodes)) != len(nodes):
            raise ValueError("nodes must be distinct")
        return nodes

    def task(self, *, researcher: str | None = None, job: str | None = None) -> AnalysisTask:
        """The task every node receives; ``researcher`` (the submitter) and ``job`` are the coordinator's."""
        document = self.model_dump(mode="json", include=set(_TASK_FIELDS), exclude_none=True)
        dp = None if self.privacy is None or self.privacy.dp is None else self.privacy.dp.model_dump(mode="json")
        privacy = _task_privacy(self.study, {"dp": dp}, self.secure_aggregation)
        if privacy is not None or researcher is not None or job is not None:
            document["privacy"] = {**(privacy or {}), "researcher": researcher, "job": job}
        return parse_task(document)


def _task_privacy(study: Any, privacy: Any, secure_aggregation: Any) -> dict[str, Any] | None:
    """The task's privacy block from the spec's fields (None when the spec asks for nothing)."""
    dp = privacy.get("dp") if isinstance(privacy, dict) else None
    if study is None and dp is None and not secure_aggregation:
        return None
    return {"study": study, "dp": dp, "secure_aggregation": secure_aggregation or False}


JobSpec = Annotated[CountSpec | FedAvgMlpSpec | AnalysisSpec | LearningSpec, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[CountSpec | FedAvgMlpSpec | AnalysisSpec | LearningSpec] = TypeAdapter(JobSpec)


def parse_spec(value: Any) -> CountSpec | FedAvgMlpSpec | AnalysisSpec | LearningSpec:
    """The spec model of a stored or submitted spec; InputError naming field locations and rules only."""
    try:
        return _ADAPTER.validate_python(value)
    except ValidationError as exc:
        hints = [
            ".".join(str(part) for part in err["loc"]) + f": {err['type']}" for err in exc.errors(include_input=False)
        ]
        reason = "unknown job kind" if any("union_tag" in hint for hint in hints) else "invalid job spec"
        raise InputError(ErrorCode.INVALID_REQUEST, detail=reason, hints=hints[:20]) from None
