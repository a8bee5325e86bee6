"""The channel's hot query reads a node's unacknowledged messages: index them by (node, acked, dropped).

The first index led with ``delivered_at``, which served "undelivered" but not "delivered long ago and
never acknowledged": that half scanned every message the node ever acknowledged. Unacknowledged
messages are few at any time, so leading with ``acked_at`` keeps the poll's one look-up small however
long the network has run.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channel_message", schema=None) as batch_op:
        batch_op.drop_index("ix_channel_message_pending")
        batch_op.create_index(
            "ix_channel_message_unacked", ["node_id", "acked_at", "dropped_at", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("channel_message", schema=None) as batch_op:
        batch_op.drop_index("ix_channel_message_unacked")
        batch_op.create_index(
            "ix_channel_message_pending", ["node_id", "delivered_at", "dropped_at", "created_at"], unique=False
        )
