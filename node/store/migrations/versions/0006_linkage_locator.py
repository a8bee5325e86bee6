"""patient index and record locator: linkage_outbox, linkage_record, patient_consent, locator_audit

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('linkage_outbox',
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('queued_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('patient_id')
    )
    with op.batch_alter_table('linkage_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_linkage_outbox_queued_at'), ['queued_at'], unique=False)

    op.create_table('linkage_record',
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.String(length=32), nullable=True),
    sa.Column('digest', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('patient_id'),
    sa.UniqueConstraint('ref')
    )
    op.create_table('patient_consent',
    sa.Column('consent_id', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('consent_id', 'purpose')
    )
    with op.batch_alter_table('patient_consent', schema=None) as batch_op:
        batch_op.create_index('ix_patient_consent_patient', ['patient_id', 'purpose'], unique=False)

    op.create_table('locator_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('peer_node', sa.String(length=64), nullable=True),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('record_count', sa.Integer(), nullable=True),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('locator_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_locator_audit_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_locator_audit_request_id'), ['request_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('locator_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_locator_audit_request_id'))
        batch_op.drop_index(batch_op.f('ix_locator_audit_at'))

    op.drop_table('locator_audit')
    with op.batch_alter_table('patient_consent', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_consent_patient')

    op.drop_table('patient_consent')
    op.drop_table('linkage_record')
    with op.batch_alter_table('linkage_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_linkage_outbox_queued_at'))

    op.drop_table('linkage_outbox')
