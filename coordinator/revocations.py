"""The network's revocation list, and revoking a node: what ``medfed coordinator node revoke`` does.

One list names everything revoked — researchers (by name and key id) and nodes (by id, key fingerprint
and Flower node id) — so each revocation, of either kind, signs the whole list again with the next serial
(:func:`sign_next_list`); a list that named only the latest kind would un-revoke the other at every node.

Revoking a node marks it revoked in the registry (the coordinator refuses its channel, its relay calls and
its key certificate from then on) and puts it on the list, which the coordinator hands to every node with
the next poll answer or heartbeat. The nodes then refuse it themselves (``docs/trust.md``): they mask for
no secure-aggregation round that names it, answer no record-locator request from it and send it nothing,
whatever a coordinator tells them.

The functions take the network-admin key as an argument, as :mod:`coordinator.researchers` does, so a
network that keeps it offline passes it from wherever it lives.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine

from common.crypto import SigningKey, VerifyKey
from common.errors import InputError
from common.trust import RevokedNode, sign_revocations
from coordinator.store import nodes, researchers
from coordinator.store.db import now_micros, write_transaction

__all__ = ["NodeRevocation", "revoke_node", "revoked_nodes", "sign_next_list"]


@dataclass(frozen=True, slots=True)
class NodeRevocation:
    """The outcome of revoking a node: its id, whether it was enrolled until now, the list's serial."""

    node_id: str
    changed: bool
    serial: int


def revoked_nodes(conn: Connection) -> list[RevokedNode]:
    """Every revoked node as the list names it."""
    found = []
    for node in nodes.list_nodes(conn, status=nodes.NodeStatus.REVOKED):
        try:
            key = VerifyKey.from_text(node.public_key).fingerprint()
        except InputError:  # registered keys are checked at enrolment; a row edited since still gets listed
            key = ""
        found.append(RevokedNode(node=node.id, key=key, flower_node_id=node.flower_node_id))
    return found


def sign_next_list(conn: Connection, admin: SigningKey, *, now: int) -> int:
    """Sign the list of everything revoked now (``now`` in epoch microseconds) with the next serial; the serial.

    Runs in the caller's write transaction, so the revocation and its list are kept together or not at all.
    """
    serial = researchers.next_revocation_serial(conn)
    revoked = researchers.revoked_researchers(conn)
    document = sign_revocations(
        admin,
        serial=serial,
        issued_at=now // 1_000_000,
        researchers=[r.name for r in revoked],
        keys=[r.key_id for r in revoked],
        nodes=revoked_nodes(conn),
    )
    researchers.save_revocations(conn, serial=serial, document=document)
    return serial


def _listed(conn: Connection, node_id: str) -> bool:
    """Whether the current list already names ``node_id`` (the coordinator's own copy: read, not verified)."""
    current = researchers.current_revocations(conn)
    body = current.get("body") if current is not None else None
    entries = body.get("nodes") if isinstance(body, dict) else None
    return isinstance(entries, list) and any(isinstance(e, dict) and e.get("node") == node_id for e in entries)


def revoke_node(engine: Engine, admin: SigningKey, *, name: str) -> NodeRevocation:
    """Revoke the node called ``name`` (its id, or the name it enrolled under) and sign the next list.

    NotFoundError for no such node; InputError for a name that makes no node id. Revoking a node that is
    revoked and listed already signs nothing and answers the current serial; one revoked before nodes were
    listed (in the registry only) is listed now.
    """
    node_id = nodes.node_slug(name)
    with write_transaction(engine) as conn:
        changed = nodes.revoke_node(conn, node_id=node_id)
        if not changed and _listed(conn, node_id):
            return NodeRevocation(node_id, False, researchers.next_revocation_serial(conn) - 1)
        serial = sign_next_list(conn, admin, now=now_micros())
    return NodeRevocation(node_id, changed, serial)
