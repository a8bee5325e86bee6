"""``medfed node approvals|approve|reject`` and ``releases|release|withhold``: the approval and release queues.

The commands belong to ``medfed node`` itself: ``queues_app`` is added to it without a name, which merges them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from common.errors import MedfedError
from medfed.cli._common import DataDir, cli_actor, console, fail, node_audit, node_engine, node_settings

queues_app = typer.Typer()
ByOption = Annotated[str | None, typer.Option("--by", help="Who decides (recorded in the audit) [default: OS user].")]


@queues_app.command("approvals")
def node_approvals(
    data_dir: DataDir = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also decided and timed-out jobs.")] = False,
) -> None:
    """Jobs waiting for a person's approval (JSON lines, oldest first)."""
    from node.policy import queue

    state = None if show_all else queue.ApprovalState.PENDING
    _print_dataclass_lines(
        _node_queue_call(data_dir, lambda engine, audit: queue.list_approvals(engine, audit, state=state))
    )


def _node_queue_call(data_dir: Path | None, call: Callable[[Any, Any], Any]) -> Any:
    """``call(engine, audit)`` on the node's store and audit log; a MedfedError exits with its message."""
    try:
        settings = node_settings(data_dir)
        engine = node_engine(settings)
        return call(engine, node_audit(settings, engine))
    except MedfedError as exc:
        raise fail(exc) from None


def _print_dataclass_lines(values: Any) -> None:
    """One JSON line per dataclass instance, its fields in order."""
    import dataclasses

    for value in values:
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        sys.stdout.write(orjson.dumps(fields).decode() + "\n")


def _decide_job(job: str, data_dir: Path | None, by: str | None, note: str | None, *, approve: bool) -> None:
    from node.policy import queue

    decided = _node_queue_call(
        data_dir,
        lambda engine, audit: queue.decide_approval(
            engine, audit, job, approve=approve, actor=cli_actor(by), note=note
        ),
    )
    console.print(f"job {decided.job_id}: {decided.state}")


JobIdArg = Annotated[str, typer.Argument(help="The job id, as `medfed node approvals` lists it.")]
NoteOption = Annotated[str | None, typer.Option("--note", help="A note kept with the decision (no patient data).")]


@queues_app.command("approve")
def node_approve(job: JobIdArg, data_dir: DataDir = None, by: ByOption = None, note: NoteOption = None) -> None:
    """Approve a job that waits for a person (exit 1 when it is not pending)."""
    _decide_job(job, data_dir, by, note, approve=True)


@queues_app.command("reject")
def node_reject(job: JobIdArg, data_dir: DataDir = None, by: ByOption = None, note: NoteOption = None) -> None:
    """Reject a job that waits for a person (exit 1 when it is not pending)."""
    _decide_job(job, data_dir, by, note, approve=False)


@queues_app.command("releases")
def node_releases(
    data_dir: DataDir = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also released, withheld and timed-out results.")] = False,
) -> None:
    """Results held for a steward (JSON lines: id, job, summary; never the result itself)."""
    from node.policy import queue

    state = None if show_all else queue.ReleaseState.HELD
    _print_dataclass_lines(
        _node_queue_call(data_dir, lambda engine, audit: queue.list_holds(engine, audit, state=state))
    )


def _decide_hold(hold_id: int, data_dir: Path | None, by: str | None, *, release: bool) -> None:
    from node.policy import queue

    hold = _node_queue_call(
        data_dir,
        lambda engine, audit: queue.decide_release(engine, audit, hold_id, release=release, actor=cli_actor(by)),
    )
    console.print(f"result {hold.id} of job {hold.job_id}: {'released' if release else 'withheld'}")


HoldIdArg = Annotated[int, typer.Argument(help="The held result's id, as `medfed node releases` lists it.")]


@queues_app.command("release")
def node_release(hold: HoldIdArg, data_dir: DataDir = None, by: ByOption = None) -> None:
    """Release a held result to the coordinator (exit 1 when it is not held)."""
    _decide_hold(hold, data_dir, by, release=True)


@queues_app.command("withhold")
def node_withhold(hold: HoldIdArg, data_dir: DataDir = None, by: ByOption = None) -> None:
    """Withhold a held result for good (exit 1 when it is not held)."""
    _decide_hold(hold, data_dir, by, release=False)
