"""calibration: calibrations of twins' parameters and every model run they made

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-25 19:00:00.000000

One row per calibration (settings, progress, result, the decision on its proposal) and one per model run
(parameters and scores), which is also the checkpoint a restarted engine resumes from.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from twinengine.store.base import UTCDateTime

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    op.create_table(
        'calibrations',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('twin_id', sa.String(length=32), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('objective', sa.String(length=16), nullable=False),
        sa.Column('seed', sa.BigInteger(), nullable=False),
        sa.Column('max_runs', sa.Integer(), nullable=False),
        sa.Column('max_seconds', sa.Float(), nullable=True),
        sa.Column('workers', sa.Integer(), nullable=False),
        sa.Column('settings', json, nullable=False),
        sa.Column('runs_done', sa.Integer(), nullable=False),
        sa.Column('percent', sa.Float(), nullable=False),
        sa.Column('best_score', sa.Float(), nullable=True),
        sa.Column('result', json, nullable=True),
        sa.Column('error', json, nullable=True),
        sa.Column('fork_id', sa.String(length=32), nullable=True),
        sa.Column('previous', json, nullable=True),
        sa.Column('worker', sa.String(length=120), nullable=True),
        sa.Column('heartbeat_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('decided_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_calibrations_twin_created', 'calibrations', ['twin_id', 'created_at'])
    op.create_index('ix_calibrations_status', 'calibrations', ['status'])
    op.create_table(
        'calibration_runs',
        sa.Column('calibration_id', sa.String(length=32), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('params', json, nullable=False),
        sa.Column('score', sa.Float(), nullable=True),
        sa.Column('log_likelihood', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['calibration_id'], ['calibrations.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('calibration_id', 'number'),
    )


def downgrade() -> None:
    op.drop_table('calibration_runs')
    op.drop_index('ix_calibrations_status', table_name='calibrations')
    op.drop_index('ix_calibrations_twin_created', table_name='calibrations')
    op.drop_table('calibrations')
