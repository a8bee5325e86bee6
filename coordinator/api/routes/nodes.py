"""The registry of nodes as admins and observers see it: status, online, last seen, version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from coordinator.api.deps import EngineDep, NetworkViewer, SettingsDep
from coordinator.store.db import now_micros
from coordinator.store.nodes import NodeRecord, NodeStatus, list_nodes

__all__ = ["NodeList", "NodeView", "router"]

router = APIRouter(prefix="/api")


def _instant(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


class NodeView(BaseModel):
    """One node as the API shows it (no keys; times in UTC)."""

    id: str
    name: str
    status: NodeStatus
    online: bool
    enrolled_at: datetime
    last_seen_at: datetime | None
    version: str | None
    clock_skew_ms: int | None
    capabilities: dict[str, Any]

    @classmethod
    def of(cls, node: NodeRecord, *, now: int, offline_after_s: float) -> NodeView:
        """The view of ``node`` at ``now``."""
        enrolled_at = _instant(node.enrolled_at)
        assert enrolled_at is not None
        return cls(
            id=node.id,
            name=node.display_name,
            status=node.status,
            online=node.is_online(now=now, offline_after_s=offline_after_s),
            enrolled_at=enrolled_at,
            last_seen_at=_instant(node.last_seen_at),
            version=node.version,
            clock_skew_ms=node.clock_skew_ms,
            capabilities=node.capabilities,
        )


class NodeList(BaseModel):
    """Every node, ordered by id."""

    nodes: list[NodeView]


@router.get("/nodes", name="list_nodes")
def get_nodes(_viewer: NetworkViewer, engine: EngineDep, settings: SettingsDep) -> NodeList:
    """Every node with its status; ``online`` means heard from within ``node_offline_after_s``."""
    now = now_micros()
    return NodeList(
        nodes=[NodeView.of(node, now=now, offline_after_s=settings.node_offline_after_s) for node in list_nodes(engine)]
    )
