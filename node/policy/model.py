"""The node's policy file: what the hospital allows, as YAML it owns, read strictly.

Schema (``deploy/policy.example.yaml`` is a commented example)::

    version: 1
    node:
      epsilon_cap: 10.0            # node-wide differential-privacy cap over every researcher and study
      delta_cap: 1.0e-6
      approval_timeout_hours: 72   # a job waiting for a person times out after this
      release_timeout_hours: 72    # a held result waiting for a steward times out after this
    studies:
      STUDY:
        researchers: [RESEARCHER, ...]
        min_cell_size: 10          # no released cell counts fewer people (on top of disclosure.yaml)
        sources:                   # what jobs of this study may read; columns: a list, or "*" for all
          - {view: VIEW, columns: [COLUMN, ...]}
          - {dataset: DATASET, columns: "*"}
        jobs:                      # a kind not listed is refused
          count:    {approval: auto, release: auto}
          analysis: {approval: auto, release: steward, analyses: [mean, histogram]}
          learning: {approval: person, release: auto, apps: [fedavg_mlp], max_rounds: 50}
        privacy:                   # epsilon/delta per researcher in this study; absent: no DP queries
          epsilon: 1.0
          delta: 0.0
          researchers: {RESEARCHER: {epsilon: 2.0, delta: 0.0}}

``"*"`` is a wildcard in four places, for a starter policy that allows every built-in kind (the one
``medfed node init`` writes): a study named ``"*"`` decides the jobs of every study the policy does not
name (and of jobs that name no study); ``researchers: ["*"]`` admits every researcher; a source
``{view: "*"}`` or ``{dataset: "*"}`` admits every view or dataset; ``analyses: "*"`` admits every
analysis installed with the node (new ones included). A study with a wildcard cannot
carry a privacy budget: budgets are per named researcher and study.

``approval``: ``auto`` (the node runs the job) or ``person`` (it waits in ``medfed node approvals``);
``release``: ``auto`` (results leave after the automatic disclosure checks) or ``steward`` (they wait
for ``medfed node release``).

Reading is strict, because a typo in a policy must not quietly loosen it: unknown keys, wrong types
(YAML's ``yes``/``no``/dates included), duplicate keys, unknown analyses are a :class:`ConfigError`
whose hints give each problem's location (``studies.diabetes.jobs.analysis.analyses[1]: ...``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from common.analytics.registry import ANALYSES
from common.errors import ConfigError

__all__ = [
    "ANY",
    "AnalysisRule",
    "CountRule",
    "LearningRule",
    "LoadedPolicy",
    "NodeRules",
    "Policy",
    "PrivacyRule",
    "SourceRule",
    "Study",
    "load_policy",
    "load_policy_bytes",
    "parse_policy",
]

MAX_POLICY_BYTES = 1024 * 1024
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:+-]*$")]
ANY: Final = "*"
"""The wildcard: any study, researcher, view or dataset (see the module docstring)."""
NameOrAny = Name | Literal["*"]
ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Approval = Literal["auto", "person"]
Release = Literal["auto", "steward"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class Amount(_Strict):
    """An epsilon and delta."""

    epsilon: float = Field(ge=0, le=1e6)
    delta: float = Field(default=0.0, ge=0, lt=1)

    _finite_epsilon = field_validator("epsilon", "delta")(_finite)


class KindRule(_Strict):
    """Whether jobs of one kind run without a person, and whether their results wait for a steward."""

    approval: Approval = "person"
    release: Release = "auto"


class CountRule(KindRule):
    """Federated counts."""


class AnalysisRule(KindRule):
    """Federated analyses: only those listed (``"*"``: every analysis installed with the node)."""

    analyses: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | Literal["*"] = Field(min_length=1)

    @field_validator("analyses")
    @classmethod
    def _known(cls, analyses: list[str] | Literal["*"]) -> list[str] | Literal["*"]:
        if analyses == ANY:
            return analyses
        unknown = sorted(set(analyses) - set(ANALYSES))
        if unknown:
            raise ValueError(f"unknown analyses {unknown}; known: {sorted(ANALYSES)}")
        return analyses


class LearningRule(KindRule):
    """Federated learning: only the installed apps listed, for at most ``max_rounds`` rounds."""

    apps: list[Name] = Field(min_length=1)
    max_rounds: int | None = Field(default=None, ge=1, le=100_000)


class JobRules(_Strict):
    """The job kinds a study may run; a kind left out is refused."""

    count: CountRule | None = None
    analysis: AnalysisRule | None = None
    learning: LearningRule | None = None


class SourceRule(_Strict):
    """One view or dataset a study may read, and which of its columns (``"*"``: all)."""

    view: NameOrAny | None = None
    dataset: NameOrAny | None = None
    columns: list[ColumnName] | Literal["*"]

    @model_validator(mode="after")
    def _one_source(self) -> SourceRule:
        if (self.view is None) == (self.dataset is None):
            raise ValueError("name exactly one of view and dataset")
        return self

    @property
    def key(self) -> tuple[str, str]:
        """``("view", NAME)`` or ``("dataset", NAME)``."""
        return ("view", self.view) if self.view is not None else ("dataset", str(self.dataset))


class PrivacyRule(Amount):
    """The differential-privacy budget of each researcher in a study, with per-researcher overrides."""

    researchers: dict[Name, Amount] = Field(default_factory=dict)

    def budget_of(self, researcher: str) -> Amount:
        """The budget ``researcher`` has in this study."""
        return self.researchers.get(researcher, Amount(epsilon=self.epsilon, delta=self.delta))


class Study(_Strict):
    """Who may ask what of which data, and how carefully the answers are released."""

    researchers: list[NameOrAny] = Field(min_length=1)
    min_cell_size: int = Field(default=10, ge=1, le=100_000)
    sources: list[SourceRule] = Field(default_factory=list)
    jobs: JobRules
    privacy: PrivacyRule | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        keys = [source.key for source in self.sources]
        if len(set(keys)) != len(keys):
            raise ValueError("a source is listed twice")
        if self.privacy is not None and ANY in self.researchers:
            raise ValueError("a study open to every researcher cannot carry a privacy budget; name the researchers")
        if self.privacy is not None and not set(self.privacy.researchers) <= set(self.researchers):
            raise ValueError("privacy.researchers names someone who is not among the study's researchers")
        return self


class NodeRules(_Strict):
    """Node-wide rules."""

    epsilon_cap: float = Field(default=0.0, ge=0, le=1e6)
    delta_cap: float = Field(default=0.0, ge=0, lt=1)
    approval_timeout_hours: float = Field(default=72.0, gt=0, le=24 * 365)
    release_timeout_hours: float = Field(default=72.0, gt=0, le=24 * 365)

    _finite_caps = field_validator("epsilon_cap", "delta_cap", "approval_timeout_hours", "release_timeout_hours")(
        _finite
    )


class Policy(_Strict):
    """The whole policy file."""

    version: Literal[1]
    node: NodeRules = Field(default_factory=NodeRules)
    studies: dict[NameOrAny, Study] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _wildcard_without_budget(self) -> Policy:
        wildcard = self.studies.get(ANY)
        if wildcard is not None and wildcard.privacy is not None:
            raise ValueError('the "*" study cannot carry a privacy budget; name the study')
        return self


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A policy and the SHA-256 of the file it was read from (what audit entries name)."""

    policy: Policy
    sha256: str


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _location(parts: tuple[int | str, ...]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for a mapping key that failed (the key itself is the part before)
            text += " (key)"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def parse_policy(document: object, *, origin: str = "policy") -> Policy:
    """The policy in a parsed YAML document; ConfigError with every problem's location as hints."""
    if not isinstance(document, Mapping):
        raise ConfigError(detail=f"{origin}: a policy is a mapping with 'version: 1'", hints=("(top level): mapping",))
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        hints = [f"{_location(tuple(err['loc']))}: {err['msg']}" for err in exc.errors(include_input=False)]
        raise ConfigError(detail=f"{origin}: invalid policy ({len(hints)} problems)", hints=hints[:50]) from None


def load_policy(path: Path) -> LoadedPolicy:
    """Read and validate the policy file at ``path``; ConfigError for a missing, unreadable or invalid one."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(detail=f"cannot read the policy file {path} ({type(exc).__name__})") from None
    return load_policy_bytes(raw, origin=str(path))


def load_policy_bytes(raw: bytes, *, origin: str = "policy") -> LoadedPolicy:
    """Validate policy YAML given as bytes (see :func:`load_policy`)."""
    if len(raw) > MAX_POLICY_BYTES:
        raise ConfigError(detail=f"{origin}: larger than {MAX_POLICY_BYTES} bytes")
    try:
        document = yaml.load(raw, Loader=_StrictLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(detail=f"{origin}: not valid YAML at {where}", hints=(f"{where}: {problem}",)) from None
    return LoadedPolicy(policy=parse_policy(document, origin=origin), sha256=hashlib.sha256(raw).hexdigest())
