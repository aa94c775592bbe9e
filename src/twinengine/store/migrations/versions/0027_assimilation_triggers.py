"""assimilation triggers: twins whose cycles run by themselves, with the claim that runs them once

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-25 19:50:00.000000

One row per twin whose assimilation runs on arrival of observations or on a schedule: the stream offset the
last pass read up to, a claim with a lease (two engine processes never run the same cycles), and how the last
pass ended (consecutive failures, the last error).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from twinengine.store.base import UTCDateTime

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'assimilation_schedules',
        sa.Column('twin_id', sa.String(length=32), nullable=False),
        sa.Column('run_on', sa.String(length=16), nullable=False),
        sa.Column('every_seconds', sa.Float(), nullable=True),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('next_due_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('seen_end', sa.BigInteger(), nullable=False),
        sa.Column('claimed_by', sa.String(length=128), nullable=True),
        sa.Column('claimed_until', UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_run_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_cycles', sa.Integer(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_error_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('twin_id'),
    )
    op.create_index('ix_assimilation_schedules_due', 'assimilation_schedules', ['enabled', 'next_due_at'])


def downgrade() -> None:
    op.drop_index('ix_assimilation_schedules_due', table_name='assimilation_schedules')
    op.drop_table('assimilation_schedules')
