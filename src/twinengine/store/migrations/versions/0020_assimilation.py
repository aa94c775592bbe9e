"""assimilation: the cycles of data assimilation a twin's state received

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-25 19:00:00.000000

One row per analysis: its observations with their stream offsets, innovation statistics, the analysis
ensemble (the next cycle starts from it), the method, tuning and seed, and the state revision it wrote.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from twinengine.store.base import UTCDateTime

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    op.create_table(
        'assimilation_cycles',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('twin_id', sa.String(length=32), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('members', sa.Integer(), nullable=False),
        sa.Column('seed', sa.BigInteger(), nullable=False),
        sa.Column('tuning', json, nullable=False),
        sa.Column('valid_time', UTCDateTime(timezone=True), nullable=False),
        sa.Column('offsets', json, nullable=False),
        sa.Column('observations', json, nullable=False),
        sa.Column('innovations', json, nullable=False),
        sa.Column('obs_count', sa.Integer(), nullable=False),
        sa.Column('innovation_mean', sa.Float(), nullable=True),
        sa.Column('innovation_rms', sa.Float(), nullable=True),
        sa.Column('expected_rms', sa.Float(), nullable=True),
        sa.Column('spread', sa.Float(), nullable=False),
        sa.Column('ensemble', json, nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('origin_cycle', sa.String(length=32), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_assimilation_cycles_by_twin', 'assimilation_cycles', ['twin_id', 'number'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_assimilation_cycles_by_twin', table_name='assimilation_cycles')
    op.drop_table('assimilation_cycles')
