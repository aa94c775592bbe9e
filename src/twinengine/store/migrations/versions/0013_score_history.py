"""twins: the score history of verification (scores per period of valid time) and its cursors

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 09:00:00.000000

Scores of a twin's forecasts per forecasting system (workflow, model version, ensemble size), lead and period
of valid time, kept as observations and forecasts arrive, so a score can be followed over months without
matching every forecast again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import twinengine.store.base

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('verification_scores',
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('property', sa.String(length=64), nullable=False),
    sa.Column('period_seconds', sa.Integer(), nullable=False),
    sa.Column('period_start', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('workflow', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=32), nullable=False),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.Column('lead_seconds', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('scores', _JSON, nullable=False),
    sa.Column('computed_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_verification_scores_twin_id_twins'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('twin_id', 'property', 'period_seconds', 'period_start', 'workflow', 'model_version',
                            'members', 'lead_seconds', name=op.f('pk_verification_scores'))
    )
    op.create_table('verification_cursors',
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('property', sa.String(length=64), nullable=False),
    sa.Column('period_seconds', sa.Integer(), nullable=False),
    sa.Column('head_revision', sa.Integer(), nullable=False),
    sa.Column('forecasts_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_verification_cursors_twin_id_twins'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('twin_id', 'property', 'period_seconds', name=op.f('pk_verification_cursors'))
    )


def downgrade() -> None:
    op.drop_table('verification_cursors')
    op.drop_table('verification_scores')
