"""Job specs as submitted: one pydantic model per built-in kind, told apart by ``kind``.

A spec is a declarative JSON object, never code. The node channel reads two keys of every stored spec:
``app`` (the installed app that answers) and ``message_types`` (what that app may be asked); each kind
fixes both, so a submitter cannot widen what a job may ask of a node.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from common.errors import ErrorCode, InputError

__all__ = ["CountSpec", "FedAvgMlpSpec", "JobSpec", "parse_spec"]


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


JobSpec = Annotated[CountSpec | FedAvgMlpSpec, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[CountSpec | FedAvgMlpSpec] = TypeAdapter(JobSpec)


def parse_spec(value: Any) -> CountSpec | FedAvgMlpSpec:
    """The spec model of a stored or submitted spec; InputError naming field locations and rules only."""
    try:
        return _ADAPTER.validate_python(value)
    except ValidationError as exc:
        hints = [
            ".".join(str(part) for part in err["loc"]) + f": {err['type']}" for err in exc.errors(include_input=False)
        ]
        reason = "unknown job kind" if any("union_tag" in hint for hint in hints) else "invalid job spec"
        raise InputError(ErrorCode.INVALID_REQUEST, detail=reason, hints=hints[:20]) from None
