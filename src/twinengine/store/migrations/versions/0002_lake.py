"""data lake: endpoints, identifiers, replicas, rules, locks, transfers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 20:30:03.707251
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import twinengine.store.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lake_dids',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=True),
    sa.Column('adler32', sa.String(length=8), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('media_type', sa.String(length=128), nullable=True),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('geometry', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('west', sa.Float(), nullable=True),
    sa.Column('south', sa.Float(), nullable=True),
    sa.Column('east', sa.Float(), nullable=True),
    sa.Column('north', sa.Float(), nullable=True),
    sa.Column('start_time', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_time', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lake_dids')),
    sa.UniqueConstraint('scope', 'name', name=op.f('uq_lake_dids_scope_name'))
    )
    with op.batch_alter_table('lake_dids', schema=None) as batch_op:
        batch_op.create_index('ix_lake_dids_type_time', ['type', 'start_time', 'end_time'], unique=False)

    op.create_table('lake_endpoints',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('protocol', sa.String(length=16), nullable=False),
    sa.Column('location', sa.String(length=1024), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('quota_bytes', sa.BigInteger(), nullable=True),
    sa.Column('read', sa.Boolean(), nullable=False),
    sa.Column('write', sa.Boolean(), nullable=False),
    sa.Column('delete', sa.Boolean(), nullable=False),
    sa.Column('credential_kind', sa.String(length=16), nullable=True),
    sa.Column('credential_cipher', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lake_endpoints')),
    sa.UniqueConstraint('name', name=op.f('uq_lake_endpoints_name'))
    )
    op.create_table('lake_attachments',
    sa.Column('parent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('child_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=True),
    sa.Column('created_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['child_id'], ['lake_dids.id'], name=op.f('fk_lake_attachments_child_id_lake_dids'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['lake_dids.id'], name=op.f('fk_lake_attachments_parent_id_lake_dids'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('parent_id', 'child_id', name=op.f('pk_lake_attachments'))
    )
    with op.batch_alter_table('lake_attachments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lake_attachments_child_id'), ['child_id'], unique=False)

    op.create_table('lake_replicas',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('did_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=True),
    sa.Column('tombstone', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('verified_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['did_id'], ['lake_dids.id'], name=op.f('fk_lake_replicas_did_id_lake_dids'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['endpoint_id'], ['lake_endpoints.id'], name=op.f('fk_lake_replicas_endpoint_id_lake_endpoints'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lake_replicas')),
    sa.UniqueConstraint('did_id', 'endpoint_id', name=op.f('uq_lake_replicas_did_id_endpoint_id'))
    )
    with op.batch_alter_table('lake_replicas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lake_replicas_endpoint_id'), ['endpoint_id'], unique=False)
        batch_op.create_index('ix_lake_replicas_state', ['state'], unique=False)

    op.create_table('lake_rules',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('did_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('copies', sa.Integer(), nullable=False),
    sa.Column('expression', sa.String(length=500), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('comment', sa.String(length=500), nullable=True),
    sa.Column('expires_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('dirty', sa.Boolean(), nullable=False),
    sa.Column('locks_ok', sa.Integer(), nullable=False),
    sa.Column('locks_replicating', sa.Integer(), nullable=False),
    sa.Column('locks_stuck', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('evaluated_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['did_id'], ['lake_dids.id'], name=op.f('fk_lake_rules_did_id_lake_dids'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lake_rules'))
    )
    with op.batch_alter_table('lake_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lake_rules_did_id'), ['did_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lake_rules_dirty'), ['dirty'], unique=False)

    op.create_table('lake_locks',
    sa.Column('rule_id', sa.String(length=32), nullable=False),
    sa.Column('did_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['did_id'], ['lake_dids.id'], name=op.f('fk_lake_locks_did_id_lake_dids'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['endpoint_id'], ['lake_endpoints.id'], name=op.f('fk_lake_locks_endpoint_id_lake_endpoints'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['rule_id'], ['lake_rules.id'], name=op.f('fk_lake_locks_rule_id_lake_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rule_id', 'did_id', 'endpoint_id', name=op.f('pk_lake_locks'))
    )
    with op.batch_alter_table('lake_locks', schema=None) as batch_op:
        batch_op.create_index('ix_lake_locks_replica', ['did_id', 'endpoint_id'], unique=False)

    op.create_table('lake_transfers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('did_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dest_endpoint_id', sa.Integer(), nullable=False),
    sa.Column('source_endpoint_id', sa.Integer(), nullable=True),
    sa.Column('rule_id', sa.String(length=32), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('heartbeat_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('bytes_done', sa.BigInteger(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dest_endpoint_id'], ['lake_endpoints.id'], name=op.f('fk_lake_transfers_dest_endpoint_id_lake_endpoints'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['did_id'], ['lake_dids.id'], name=op.f('fk_lake_transfers_did_id_lake_dids'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['lake_rules.id'], name=op.f('fk_lake_transfers_rule_id_lake_rules'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_endpoint_id'], ['lake_endpoints.id'], name=op.f('fk_lake_transfers_source_endpoint_id_lake_endpoints'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lake_transfers'))
    )
    with op.batch_alter_table('lake_transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lake_transfers_did_id'), ['did_id'], unique=False)
        batch_op.create_index('ix_lake_transfers_queue', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_lake_transfers_rule_id'), ['rule_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('lake_transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lake_transfers_rule_id'))
        batch_op.drop_index('ix_lake_transfers_queue')
        batch_op.drop_index(batch_op.f('ix_lake_transfers_did_id'))

    op.drop_table('lake_transfers')
    with op.batch_alter_table('lake_locks', schema=None) as batch_op:
        batch_op.drop_index('ix_lake_locks_replica')

    op.drop_table('lake_locks')
    with op.batch_alter_table('lake_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lake_rules_dirty'))
        batch_op.drop_index(batch_op.f('ix_lake_rules_did_id'))

    op.drop_table('lake_rules')
    with op.batch_alter_table('lake_replicas', schema=None) as batch_op:
        batch_op.drop_index('ix_lake_replicas_state')
        batch_op.drop_index(batch_op.f('ix_lake_replicas_endpoint_id'))

    op.drop_table('lake_replicas')
    with op.batch_alter_table('lake_attachments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lake_attachments_child_id'))

    op.drop_table('lake_attachments')
    op.drop_table('lake_endpoints')
    with op.batch_alter_table('lake_dids', schema=None) as batch_op:
        batch_op.drop_index('ix_lake_dids_type_time')

    op.drop_table('lake_dids')
