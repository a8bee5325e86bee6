"""audit chain (hash-chained, signed entries and their head) and the policy approval and release queues

The head row (id 1, seq 0, the all-zero hash) is created here, so the first append finds it to lock.
The old ``access_audit`` table stays (its rows keep their meaning) but is no longer written: calls with
a token are audited in the chain from this revision on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

GENESIS_HASH = '0' * 64


def upgrade() -> None:
    op.create_table('audit_entry',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('subject', sa.String(length=80), nullable=True),
    sa.Column('subject_ref', sa.String(length=200), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=80), nullable=False),
    sa.Column('signature', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entry_kind_seq', ['kind', 'seq'], unique=False)

    head = op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(head, [{'id': 1, 'seq': 0, 'hash': GENESIS_HASH}])

    op.create_table('policy_approval',
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('study', sa.String(length=200), nullable=False),
    sa.Column('researcher', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('rule', sa.String(length=300), nullable=False),
    sa.Column('job', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('requested_at', sa.BigInteger(), nullable=False),
    sa.Column('deadline_at', sa.BigInteger(), nullable=False),
    sa.Column('decided_at', sa.BigInteger(), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('job_id')
    )
    with op.batch_alter_table('policy_approval', schema=None) as batch_op:
        batch_op.create_index('ix_policy_approval_state', ['state', 'deadline_at'], unique=False)

    op.create_table('policy_release_hold',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('result_ref', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('held_at', sa.BigInteger(), nullable=False),
    sa.Column('deadline_at', sa.BigInteger(), nullable=False),
    sa.Column('decided_at', sa.BigInteger(), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job_id', 'result_ref', name='uq_policy_release_hold_result')
    )
    with op.batch_alter_table('policy_release_hold', schema=None) as batch_op:
        batch_op.create_index('ix_policy_release_hold_state', ['state', 'deadline_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('policy_release_hold', schema=None) as batch_op:
        batch_op.drop_index('ix_policy_release_hold_state')
    op.drop_table('policy_release_hold')
    with op.batch_alter_table('policy_approval', schema=None) as batch_op:
        batch_op.drop_index('ix_policy_approval_state')
    op.drop_table('policy_approval')
    op.drop_table('audit_chain_head')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entry_kind_seq')
    op.drop_table('audit_entry')
