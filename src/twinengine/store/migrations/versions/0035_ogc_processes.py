"""processes: deployed OGC processes and the jobs executions start

Revision ID: 0035
Revises: 0034
Create Date: 2026-11-28 17:00:00.000000

``ogc_processes`` keeps CWL application packages deployed through OGC API - Processes (Part 2) with their
process descriptions; ``ogc_jobs`` says which process a run was started for and which outputs and response its
execution asked for (the run itself is the job).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from twinengine.store.base import UTCDateTime

revision = '0035'
down_revision = '0034'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'ogc_processes',
        sa.Column('id', sa.String(length=120), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=False),
        sa.Column('owner', sa.String(length=64), nullable=False),
        sa.Column('app', sa.String(length=130), nullable=True),
        sa.Column('title', sa.String(length=200), nullable=True),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('package', _JSON, nullable=False),
        sa.Column('package_sha256', sa.String(length=64), nullable=False),
        sa.Column('process', _JSON, nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'ogc_jobs',
        sa.Column('run_id', sa.String(length=40), nullable=False),
        sa.Column('process_id', sa.String(length=120), nullable=False),
        sa.Column('request', _JSON, nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_id'),
    )
    op.create_index('ix_ogc_jobs_process', 'ogc_jobs', ['process_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ogc_jobs_process', table_name='ogc_jobs')
    op.drop_table('ogc_jobs')
    op.drop_table('ogc_processes')
