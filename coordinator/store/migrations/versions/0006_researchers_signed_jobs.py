"""Researchers, their membership certificates, revocation lists and the signed document of each job.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "researcher",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=80), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["token_id"], ["coordinator_api_token.id"]),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("key_id"),
    )
    op.create_index(op.f("ix_researcher_token_id"), "researcher", ["token_id"], unique=False)
    op.create_table(
        "researcher_membership",
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("researcher", sa.String(length=64), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["researcher"], ["researcher.name"]),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_index(op.f("ix_researcher_membership_researcher"), "researcher_membership", ["researcher"], unique=False)
    op.create_table(
        "researcher_revocation_list",
        sa.Column("serial", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_table(
        "job_signature",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("researcher", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.ForeignKeyConstraint(["researcher"], ["researcher.name"]),
        sa.PrimaryKeyConstraint("job_id"),
        sa.UniqueConstraint("digest"),
    )
    op.create_index(op.f("ix_job_signature_researcher"), "job_signature", ["researcher"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_job_signature_researcher"), table_name="job_signature")
    op.drop_table("job_signature")
    op.drop_table("researcher_revocation_list")
    op.drop_index(op.f("ix_researcher_membership_researcher"), table_name="researcher_membership")
    op.drop_table("researcher_membership")
    op.drop_index(op.f("ix_researcher_token_id"), table_name="researcher")
    op.drop_table("researcher")
