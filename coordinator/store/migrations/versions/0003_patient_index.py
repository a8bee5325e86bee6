"""The pseudonymous patient index, the record locator's relay mailbox and the nodes' key certificates.

``index_token`` is the lookup's hot table: its primary key leads with the re-keyed token, so a lookup
of a hundred probe tokens is a hundred index seeks (on SQLite the rows live in that key's B-tree,
WITHOUT ROWID; on PostgreSQL the key INCLUDEs the variant, so the seeks are index-only);
``ix_index_token_record`` serves replacing and withdrawing one record's tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RECORD_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "index_variant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tier", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "index_record",
        sa.Column("id", _RECORD_ID, nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("record_ref", sa.String(length=64), nullable=False),
        sa.Column("cluster_id", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("node_id", "record_ref", name="uq_index_record_ref"),
    )
    with op.batch_alter_table("index_record", schema=None) as batch_op:
        batch_op.create_index("ix_index_record_cluster", ["cluster_id"], unique=False)
    op.create_table(
        "index_token",
        sa.Column("token", sa.LargeBinary(length=32), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("variant_id", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["index_record.id"]),
        sa.PrimaryKeyConstraint("token", "record_id", postgresql_include=["variant_id"]),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("index_token", schema=None) as batch_op:
        batch_op.create_index("ix_index_token_record", ["record_id"], unique=False)
    op.create_table(
        "index_suppression",
        sa.Column("token", sa.LargeBinary(length=32), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("record_ref", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("token", "node_id", "record_ref"),
    )
    with op.batch_alter_table("index_suppression", schema=None) as batch_op:
        batch_op.create_index("ix_index_suppression_ref", ["node_id", "record_ref"], unique=False)
    op.create_table(
        "index_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("index_audit", schema=None) as batch_op:
        batch_op.create_index("ix_index_audit_node_at", ["node_id", "at"], unique=False)
    op.create_table(
        "relay_message",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("from_node", sa.String(length=64), nullable=False),
        sa.Column("to_node", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("correlation", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["from_node"], ["node.id"]),
        sa.ForeignKeyConstraint(["to_node"], ["node.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("relay_message", schema=None) as batch_op:
        batch_op.create_index("ix_relay_message_inbox", ["to_node", "kind", "correlation", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_relay_message_expires_at"), ["expires_at"], unique=False)
    op.create_table(
        "node_key_certificate",
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("seal_public_key", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["node.id"]),
        sa.PrimaryKeyConstraint("node_id"),
    )


def downgrade() -> None:
    op.drop_table("node_key_certificate")
    with op.batch_alter_table("relay_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_relay_message_expires_at"))
        batch_op.drop_index("ix_relay_message_inbox")
    op.drop_table("relay_message")
    with op.batch_alter_table("index_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_index_audit_node_at")
    op.drop_table("index_audit")
    with op.batch_alter_table("index_suppression", schema=None) as batch_op:
        batch_op.drop_index("ix_index_suppression_ref")
    op.drop_table("index_suppression")
    with op.batch_alter_table("index_token", schema=None) as batch_op:
        batch_op.drop_index("ix_index_token_record")
    op.drop_table("index_token")
    with op.batch_alter_table("index_record", schema=None) as batch_op:
        batch_op.drop_index("ix_index_record_cluster")
    op.drop_table("index_record")
    op.drop_table("index_variant")
