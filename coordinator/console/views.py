"""What the console shows, as plain JSON-ready rows built from store records.

The pages render these rows on the server and the script re-renders them from the same rows in
``/console/api/...``, so both show one format (times in UTC, skew flagged over 30 s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from coordinator.store.jobs import JobNodeRecord, JobRecord, RoundRecord, RoundStatus
from coordinator.store.nodes import NodeRecord, NodeStatus

__all__ = ["SKEW_FLAG_MS", "job_detail", "job_row", "node_rows", "when"]

SKEW_FLAG_MS = 30_000  # a node clock further off than this is flagged, as the heartbeat reports it
_DETAIL_ITEMS = 4
_DETAIL_CHARS = 24


def when(micros: int | None) -> str:
    """An epoch-microsecond instant as ``YYYY-MM-DD HH:MM:SSZ`` (UTC), or an empty string."""
    if micros is None:
        return ""
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _skew(skew_ms: int | None) -> str:
    return "" if skew_ms is None else f"{skew_ms / 1000:+.1f} s"


def node_rows(nodes: Sequence[NodeRecord], *, now: int, offline_after_s: float) -> list[dict[str, Any]]:
    """One row per node: liveness from ``last_seen_at`` and ``offline_after_s``, version, skew."""
    rows = []
    for node in nodes:
        online = node.is_online(now=now, offline_after_s=offline_after_s)
        state = "revoked" if node.status is NodeStatus.REVOKED else ("online" if online else "offline")
        rows.append(
            {
                "id": node.id,
                "name": node.display_name,
                "state": state,
                "version": node.version or "",
                "last_seen": when(node.last_seen_at),
                "skew": _skew(node.clock_skew_ms),
                "skew_flagged": node.clock_skew_ms is not None and abs(node.clock_skew_ms) > SKEW_FLAG_MS,
            }
        )
    return rows


def job_row(job: JobRecord) -> dict[str, Any]:
    """One job as the jobs table shows it."""
    return {
        "id": job.id,
        "kind": job.kind,
        "status": str(job.status),
        "submitter": job.submitter,
        "created": when(job.created_at),
        "started": when(job.started_at),
        "finished": when(job.finished_at),
    }


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)[:_DETAIL_CHARS]


def _cell(entry: Any, round_status: RoundStatus) -> dict[str, str]:
    """One node's state in one round, from the round's ``per_node`` entry (any JSON the driver wrote)."""
    if entry is None:
        return {"state": "waiting" if round_status is RoundStatus.RUNNING else "absent", "detail": ""}
    if not isinstance(entry, Mapping):
        return {"state": "replied", "detail": _value(entry)}
    if isinstance(entry.get("status"), str):
        state = entry["status"][:_DETAIL_CHARS]
    elif entry.get("missed"):
        state = "missed"
    elif entry.get("error"):
        state = "failed"
    else:
        state = "replied"
    details = [
        f"{k}={_value(v)}" for k, v in entry.items() if k not in ("status", "missed") and not isinstance(v, dict)
    ]
    return {"state": state, "detail": " ".join(details[:_DETAIL_ITEMS])}


def job_detail(job: JobRecord, nodes: Sequence[JobNodeRecord], rounds: Sequence[RoundRecord]) -> dict[str, Any]:
    """A job with its rounds x nodes grid: the job's nodes, then any other node a round names, by id."""
    node_ids = [n.node_id for n in nodes]
    extra = sorted({str(k) for r in rounds for k in r.per_node} - set(node_ids))
    columns = [{"id": n.node_id, "status": str(n.status)} for n in nodes]
    columns += [{"id": node_id, "status": ""} for node_id in extra]
    return {
        "job": {**job_row(job), "error": job.error or ""},
        "nodes": columns,
        "rounds": [
            {
                "round": r.round,
                "status": str(r.status),
                "started": when(r.started_at),
                "finished": when(r.finished_at),
                "replies": r.replies,
                "cells": [_cell(r.per_node.get(c["id"]), r.status) for c in columns],
            }
            for r in rounds
        ],
    }
