"""signed jobs: trust_seen_job (replay protection) and trust_revocations (the newest revocation list)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trust_seen_job",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=200), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("trust_seen_job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trust_seen_job_issued_at"), ["issued_at"], unique=False)
    op.create_table(
        "trust_revocations",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("trust_revocations")
    with op.batch_alter_table("trust_seen_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trust_seen_job_issued_at"))
    op.drop_table("trust_seen_job")
