"""initial tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=True),
    sa.Column('resource_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('result_count', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('access_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_audit_at'), ['at'], unique=False)

    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('fhir_resource',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.BigInteger(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('resource_type', 'id')
    )
    op.create_table('fhir_resource_history',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.BigInteger(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('resource_type', 'id', 'version_id')
    )
    op.create_table('ingest_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('summary', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('search_date',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('low', sa.BigInteger(), nullable=False),
    sa.Column('high', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('resource_type', 'resource_id', 'param', 'low', 'high'),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('search_date', schema=None) as batch_op:
        batch_op.create_index('ix_search_date_high', ['resource_type', 'param', 'high', 'low', 'resource_id'], unique=False)
        batch_op.create_index('ix_search_date_low', ['resource_type', 'param', 'low', 'high', 'resource_id'], unique=False)

    op.create_table('search_reference',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('resource_type', 'resource_id', 'param', 'target_type', 'target_id'),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('search_reference', schema=None) as batch_op:
        batch_op.create_index('ix_search_reference_target', ['target_type', 'target_id', 'resource_type', 'param', 'resource_id'], unique=False)

    op.create_table('search_string',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('value_norm', sa.String().with_variant(sa.String(collation='C'), 'postgresql'), nullable=False),
    sa.Column('value_exact', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('resource_type', 'resource_id', 'param', 'value_norm', 'value_exact'),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('search_string', schema=None) as batch_op:
        batch_op.create_index('ix_search_string_lookup', ['resource_type', 'param', 'value_norm', 'resource_id'], unique=False)

    op.create_table('search_token',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(), nullable=False),
    sa.Column('code', sa.String(), nullable=False),
    sa.Column('date_low', sa.BigInteger(), nullable=True),
    sa.Column('date_high', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('resource_type', 'resource_id', 'param', 'system', 'code'),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('search_token', schema=None) as batch_op:
        batch_op.create_index('ix_search_token_lookup', ['resource_type', 'param', 'code', 'date_high', 'date_low', 'system', 'resource_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('search_token', schema=None) as batch_op:
        batch_op.drop_index('ix_search_token_lookup')

    op.drop_table('search_token')
    with op.batch_alter_table('search_string', schema=None) as batch_op:
        batch_op.drop_index('ix_search_string_lookup')

    op.drop_table('search_string')
    with op.batch_alter_table('search_reference', schema=None) as batch_op:
        batch_op.drop_index('ix_search_reference_target')

    op.drop_table('search_reference')
    with op.batch_alter_table('search_date', schema=None) as batch_op:
        batch_op.drop_index('ix_search_date_low')
        batch_op.drop_index('ix_search_date_high')

    op.drop_table('search_date')
    op.drop_table('ingest_report')
    op.drop_table('fhir_resource_history')
    op.drop_table('fhir_resource')
    op.drop_table('api_token')
    with op.batch_alter_table('access_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_audit_at'))

    op.drop_table('access_audit')
