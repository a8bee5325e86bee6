"""From a job as it arrives (its spec, who signed it, for which study) to the :class:`PolicyJob` policy decides on.

The channel calls :func:`job_from_spec` with the verified, signed spec; ``medfed node policy check`` reads
the same fields from a YAML file (:func:`read_job_file`)::

    job_id: demo-1          # optional
    study: diabetes-2026
    researcher: alice
    epsilon: 0.5            # optional: the privacy cost the node would charge (default 0)
    delta: 0.0
    spec:                   # the job spec as submitted (medfed job submit)
      kind: analysis
      analysis: mean
      source: {view: patient_summary}
      columns: [age]
      params: {column: age}

Kinds: ``count`` and ``analysis`` as in the spec; ``fedavg_mlp`` and ``learning`` (the learning apps)
are the policy kind ``learning``. The columns an analysis reads are its ``columns``; those a learning
task reads are its features, categorical columns, target, event, time and split columns; a job that
names none may read every column of its source, which only a source with ``columns: "*"`` allows.
A job that names no study (the coordinator's count and learning specs have no ``study`` field) is
decided by the policy's ``"*"`` study alone, as study ``"*"``.
Names (studies, researchers, sources, columns) are checked for shape, so nothing else reaches a
decision's reasons or the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError, InputError
from node.policy.decision import PolicyJob

__all__ = ["LEARNING_APPS", "NO_STUDY", "job_from_spec", "read_job_file"]

#: Installed apps that are federated learning (policy kind ``learning``).
LEARNING_APPS = frozenset({"fedavg_mlp", "learning"})
#: The study of a job that names none (only a policy's ``"*"`` study decides it).
NO_STUDY = "*"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,199}")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_JOB_FILE_KEYS = frozenset({"job_id", "study", "researcher", "epsilon", "delta", "spec"})


def _name(value: object, what: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InputError(detail=f"{what} is missing or not a valid name", hints=(f"{what}: name",))
    return value


def _amount(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
        raise InputError(detail=f"{what} must be a number in [0, 1e6)", hints=(f"{what}: number",))
    return float(value)


def _source(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    source = spec.get("source")
    if source is None:
        return None
    if isinstance(source, Mapping):  # a stored spec may spell the kind it does not use as null
        source = {key: value for key, value in source.items() if value is not None}
    if not isinstance(source, Mapping) or len(source) != 1 or next(iter(source)) not in ("view", "dataset"):
        raise InputError(detail="spec.source names one view or one dataset", hints=("spec.source: shape",))
    kind = str(next(iter(source)))
    return kind, _name(source[kind], f"spec.source.{kind}")


def _learning_columns(spec: Mapping[str, Any]) -> list[Any] | None:
    """The columns a learning task reads (None: it names none)."""
    columns: list[Any] = list(spec.get("features") or ())
    categorical = spec.get("categorical") or ()
    if not isinstance(categorical, list | tuple) or not all(isinstance(item, Mapping) for item in categorical):
        raise InputError(detail="spec.categorical is a list of mappings", hints=("spec.categorical: list",))
    columns += [item.get("column") for item in categorical]
    columns += [spec[key] for key in ("target", "event", "time") if spec.get(key) is not None]
    split = spec.get("split")
    if split is not None:
        if not isinstance(split, Mapping):
            raise InputError(detail="spec.split is a mapping", hints=("spec.split: mapping",))
        columns.append(split.get("column"))
    return list(dict.fromkeys(columns)) or None


def _columns(spec: Mapping[str, Any], kind: str) -> tuple[str, ...] | None:
    columns = spec.get("columns")
    if columns is None and kind == "learning":
        columns = _learning_columns(spec)
    if columns is None:
        return None
    if not isinstance(columns, list | tuple) or not columns:
        raise InputError(detail="spec.columns is a non-empty list", hints=("spec.columns: list",))
    return tuple(_name(column, f"spec.columns[{i}]", _COLUMN) for i, column in enumerate(columns))


def job_from_spec(
    spec: Mapping[str, Any],
    *,
    job_id: str,
    study: str | None,
    researcher: str,
    epsilon: float = 0.0,
    delta: float = 0.0,
) -> PolicyJob:
    """The :class:`PolicyJob` of a job spec; InputError (locations only) for a spec policy cannot read.

    ``study`` None: the job names no study (decided by the policy's ``"*"`` study only).
    """
    if not isinstance(spec, Mapping):
        raise InputError(detail="the job spec is not a mapping", hints=("spec: mapping",))
    spec_kind = _name(spec.get("kind"), "spec.kind")
    app = spec.get("app", spec_kind)
    app = _name(app, "spec.app")
    kind = "learning" if app in LEARNING_APPS else spec_kind
    analysis = spec.get("analysis")
    rounds = spec.get("rounds")
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int)):
        raise InputError(detail="spec.rounds is an integer", hints=("spec.rounds: integer",))
    return PolicyJob(
        job_id=_name(job_id, "job_id"),
        study=NO_STUDY if study is None else _name(study, "study"),
        researcher=_name(researcher, "researcher"),
        kind=kind,
        app=app,
        analysis=None if analysis is None else _name(analysis, "spec.analysis"),
        source=_source(spec),
        columns=_columns(spec, kind),
        rounds=rounds,
        epsilon=_amount(epsilon, "epsilon"),
        delta=_amount(delta, "delta"),
    )


def read_job_file(path: Path) -> PolicyJob:
    """The job described by a YAML file (see the module docstring); ConfigError naming the problem."""
    try:
        document = yaml.safe_load(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(detail=f"cannot read {path} ({type(exc).__name__})") from None
    except yaml.YAMLError:
        raise ConfigError(detail=f"{path} is not valid YAML") from None
    if not isinstance(document, Mapping) or not set(document) <= _JOB_FILE_KEYS or "spec" not in document:
        raise ConfigError(
            detail=f"{path}: a job file has study, researcher and spec (and optionally job_id, epsilon, delta)",
            hints=(f"keys: {sorted(_JOB_FILE_KEYS)}",),
        )
    try:
        return job_from_spec(
            document["spec"],
            job_id=document.get("job_id", "dry-run"),
            study=_name(document.get("study"), "study"),
            researcher=_name(document.get("researcher"), "researcher"),
            epsilon=document.get("epsilon", 0.0),
            delta=document.get("delta", 0.0),
        )
    except InputError as exc:
        raise ConfigError(detail=f"{path}: {exc.detail}", hints=exc.hints) from None
