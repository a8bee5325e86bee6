"""Whether one message of a verified job asks for what its researcher signed: the node's message binding.

The coordinator builds every instruction; a compromised one could send a verified job's id with another
analysis, other training settings or more rounds. Before an app reads a message, the channel checks it
against the signed spec (:class:`node.trust.TrustedJob`) with :func:`message_problems`, which reads the
same fields the app will read:

- every kind: the message type is one the signed spec allows, and any ``server-round`` is from 1 to the
  signed rounds (``rounds``; ``max_rounds`` for an analysis; 1 for a count);
- ``analysis``: the task in the ``analysis`` record equals the task the signed spec implies — analysis,
  parameters, source, columns, cohort, and its privacy block: the signed study, differential privacy and
  secure aggregation, the certificate's researcher (whom the node charges) and this job's id;
- ``learning``: the task in the ``config`` record equals the signed spec's task (model, its widths, source,
  inputs, split, optimiser, local work, DP-SGD, secure aggregation ...), and the researcher it names is the
  certificate's;
- ``fedavg_mlp``: the widths, local epochs, learning rate and batch size in ``config`` are the signed ones.

A message that fails is answered with ``message_outside_spec`` and the locations of what differs; the app
never sees it. Fields the apps do not read (the strategy's own keys, the seed) are not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from flwr.app import ConfigRecord, Message

from common.analytics.task import RECORD, TASK_KEY, AnalysisTask, from_wire, parse_task
from common.errors import MedfedError
from common.models.task import RESEARCHER_KEY, LearningTask, parse_learning_task
from common.models.task import TASK_KEY as LEARNING_TASK_KEY
from node.trust import TrustedJob

__all__ = ["message_problems"]

CONFIG_KEY: Final[str] = "config"  # the learning apps' record (node/federation/apps/{fedavg_mlp,learning})
ROUND_KEY: Final[str] = "server-round"
_ANALYSIS_FIELDS = ("analysis", "params", "source", "columns", "cohort")
# fedavg_mlp's config keys and the spec fields they carry (coordinator/federation/jobs/fedavg.py).
_FEDAVG_FIELDS = (("hidden", "hidden"), ("local-epochs", "local_epochs"), ("lr", "lr"), ("batch-size", "batch_size"))


def _expected_analysis(trusted: TrustedJob) -> AnalysisTask:
    """The task a node must receive for the signed analysis spec (as ``AnalysisSpec.task`` builds it)."""
    spec = trusted.spec
    document: dict[str, Any] = {key: spec[key] for key in _ANALYSIS_FIELDS if spec.get(key) is not None}
    privacy = spec.get("privacy")
    dp = privacy.get("dp") if isinstance(privacy, Mapping) else None
    document["privacy"] = {
        "study": spec.get("study"),
        "dp": dp,
        "secure_aggregation": bool(spec.get("secure_aggregation")),
        "researcher": trusted.researcher,
        "job": trusted.job_id,
    }
    return parse_task(document)


def _analysis(trusted: TrustedJob, message: Message) -> list[str]:
    record = message.content.config_records.get(RECORD)
    text = None if record is None else record.get(TASK_KEY)
    if not isinstance(text, str):
        return []  # nothing the app would run: it refuses the message itself
    try:
        received = parse_task(from_wire(text))
        expected = _expected_analysis(trusted)
    except (MedfedError, ValueError):
        return ["analysis.task"]
    problems = [
        f"analysis.task.{key}"
        for key in _ANALYSIS_FIELDS
        if getattr(received, key, None) != getattr(expected, key, None)
    ]
    if received.privacy != expected.privacy:
        problems.append("analysis.task.privacy")
    return problems


def _learning(trusted: TrustedJob, config: ConfigRecord | None) -> list[str]:
    if config is None:
        return []
    problems = []
    text = config.get(LEARNING_TASK_KEY)
    if isinstance(text, str):
        spec = trusted.spec
        try:
            received = parse_learning_task(text)
            expected = parse_learning_task({key: spec[key] for key in LearningTask.model_fields if key in spec})
        except MedfedError:
            return ["config.task"]
        if received != expected:
            problems.append("config.task")
    researcher = config.get(RESEARCHER_KEY)
    if researcher is not None and researcher != trusted.researcher:
        problems.append(f"config.{RESEARCHER_KEY}")
    return problems


def _fedavg(trusted: TrustedJob, config: ConfigRecord | None) -> list[str]:
    if config is None:
        return []
    spec = trusted.spec
    return [f"config.{key}" for key, field in _FEDAVG_FIELDS if key in config and config[key] != spec.get(field)]


def message_problems(trusted: TrustedJob, message: Message) -> tuple[str, ...]:
    """Where ``message`` leaves the signed spec of its job, as public locations (empty: it fits)."""
    spec = trusted.spec
    problems: list[str] = []
    allowed = spec.get("message_types")
    if not isinstance(allowed, list) or message.metadata.message_type not in allowed:
        problems.append("message.type")
    for record in message.content.config_records.values():
        value = record.get(ROUND_KEY)
        if value is not None and not trusted.round_allowed(value):
            problems.append("message.round")
            break
    app = spec.get("app")
    if app == "analysis":
        problems += _analysis(trusted, message)
    elif app == "learning":
        problems += _learning(trusted, message.content.config_records.get(CONFIG_KEY))
    elif app == "fedavg_mlp":
        problems += _fedavg(trusted, message.content.config_records.get(CONFIG_KEY))
    return tuple(f"{location}: outside the signed spec" for location in problems)
