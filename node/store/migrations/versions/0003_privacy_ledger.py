"""privacy ledger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('privacy_account',
    sa.Column('researcher', sa.String(length=200), nullable=False),
    sa.Column('study', sa.String(length=200), nullable=False),
    sa.Column('epsilon_budget_nano', sa.BigInteger(), nullable=False),
    sa.Column('delta_budget_femto', sa.BigInteger(), nullable=False),
    sa.Column('epsilon_spent_nano', sa.BigInteger(), nullable=False),
    sa.Column('delta_spent_femto', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('researcher', 'study')
    )
    op.create_table('privacy_ledger_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('researcher', sa.String(length=200), nullable=False),
    sa.Column('study', sa.String(length=200), nullable=False),
    sa.Column('query_digest', sa.String(length=80), nullable=False),
    sa.Column('job_id', sa.String(length=200), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('epsilon_nano', sa.BigInteger(), nullable=False),
    sa.Column('delta_femto', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('answer_ref', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('researcher', 'study', 'query_digest', name='uq_privacy_ledger_query')
    )
    with op.batch_alter_table('privacy_ledger_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_privacy_ledger_entry_job_id'), ['job_id'], unique=False)

    op.create_table('privacy_node_cap',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('epsilon_cap_nano', sa.BigInteger(), nullable=False),
    sa.Column('delta_cap_femto', sa.BigInteger(), nullable=False),
    sa.Column('epsilon_spent_nano', sa.BigInteger(), nullable=False),
    sa.Column('delta_spent_femto', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('privacy_node_cap')
    with op.batch_alter_table('privacy_ledger_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_privacy_ledger_entry_job_id'))

    op.drop_table('privacy_ledger_entry')
    op.drop_table('privacy_account')
