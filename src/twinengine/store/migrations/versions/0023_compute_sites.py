"""compute: sites, usage records, compute quotas

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-25 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import twinengine.store.base

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_TIME = twinengine.store.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('compute_sites',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=1024), nullable=True),
    sa.Column('options', _JSON, nullable=False),
    sa.Column('cores', sa.Integer(), nullable=False),
    sa.Column('memory_bytes', sa.BigInteger(), nullable=False),
    sa.Column('gpus', sa.Integer(), nullable=False),
    sa.Column('environments', _JSON, nullable=False),
    sa.Column('endpoints', _JSON, nullable=False),
    sa.Column('credential_kind', sa.String(length=16), nullable=True),
    sa.Column('credential_cipher', sa.Text(), nullable=True),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('draining', sa.Boolean(), nullable=False),
    sa.Column('health_error', sa.Text(), nullable=True),
    sa.Column('heartbeat_at', _TIME, nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', _TIME, nullable=False),
    sa.Column('updated_at', _TIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_sites')),
    sa.UniqueConstraint('name', name=op.f('uq_compute_sites_name'))
    )
    op.create_table('compute_usage',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('identity', sa.String(length=64), nullable=False),
    sa.Column('groups', _JSON, nullable=False),
    sa.Column('twin_id', sa.String(length=40), nullable=True),
    sa.Column('twin_name', sa.String(length=64), nullable=True),
    sa.Column('app', sa.String(length=130), nullable=True),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('executor', sa.String(length=32), nullable=True),
    sa.Column('started_at', _TIME, nullable=False),
    sa.Column('finished_at', _TIME, nullable=False),
    sa.Column('wall_seconds', sa.Float(), nullable=False),
    sa.Column('core_seconds', sa.Float(), nullable=False),
    sa.Column('remote_core_seconds', sa.Float(), nullable=False),
    sa.Column('cores', sa.Integer(), nullable=False),
    sa.Column('peak_memory_bytes', sa.BigInteger(), nullable=False),
    sa.Column('bytes_read', sa.BigInteger(), nullable=False),
    sa.Column('bytes_written', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_usage'))
    )
    with op.batch_alter_table('compute_usage', schema=None) as batch_op:
        batch_op.create_index('ix_compute_usage_identity_finished', ['identity', 'finished_at'], unique=False)
        batch_op.create_index('ix_compute_usage_site_finished', ['site', 'finished_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_compute_usage_run_id'), ['run_id'], unique=False)
    op.create_table('compute_quotas',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subject', sa.String(length=80), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('core_hours', sa.Float(), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', _TIME, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compute_quotas')),
    sa.UniqueConstraint('subject', 'site', name=op.f('uq_compute_quotas_subject_site'))
    )


def downgrade() -> None:
    op.drop_table('compute_quotas')
    with op.batch_alter_table('compute_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_compute_usage_run_id'))
        batch_op.drop_index('ix_compute_usage_site_finished')
        batch_op.drop_index('ix_compute_usage_identity_finished')
    op.drop_table('compute_usage')
    op.drop_table('compute_sites')
