"""materialised views: view_definition and view_row

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('view_definition',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('definition', sa.LargeBinary(), nullable=False),
    sa.Column('installed_at', sa.BigInteger(), nullable=False),
    sa.Column('built_at', sa.BigInteger(), nullable=True),
    sa.Column('error_count', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('view_definition', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_view_definition_resource_type'), ['resource_type'], unique=False)

    op.create_table('view_row',
    sa.Column('view_name', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('patient_key', sa.String(length=64), nullable=True),
    sa.Column('row', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('view_name', 'resource_type', 'resource_id', 'ordinal')
    )
    with op.batch_alter_table('view_row', schema=None) as batch_op:
        batch_op.create_index('ix_view_row_patient', ['view_name', 'patient_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('view_row', schema=None) as batch_op:
        batch_op.drop_index('ix_view_row_patient')

    op.drop_table('view_row')
    with op.batch_alter_table('view_definition', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_view_definition_resource_type'))

    op.drop_table('view_definition')
