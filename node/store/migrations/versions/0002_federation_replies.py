"""federation replies

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('federation_reply',
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('job_id', sa.String(length=200), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    with op.batch_alter_table('federation_reply', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_federation_reply_job_id'), ['job_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('federation_reply', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_federation_reply_job_id'))

    op.drop_table('federation_reply')
