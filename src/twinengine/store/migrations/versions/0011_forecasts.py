"""twins: issued forecasts and their values (verification); ml: a retraining policy's skill rule

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 03:55:00.000000

A forecast is a series of future values of a twin's property; each value keeps its valid time and lead, so
verification matches it with what the twin later reports and scores it per lead time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import twinengine.store.base

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('forecasts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('property', sa.String(length=64), nullable=False),
    sa.Column('workflow', sa.String(length=64), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=64), nullable=True),
    sa.Column('model_version', sa.String(length=32), nullable=True),
    sa.Column('unit', sa.String(length=64), nullable=True),
    sa.Column('interval_level', sa.Float(), nullable=True),
    sa.Column('issued_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('steps', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_forecasts_twin_id_twins'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecasts'))
    )
    op.create_index('ix_forecasts_by_issue', 'forecasts', ['twin_id', 'property', 'issued_at'], unique=False)
    op.create_table('forecast_values',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('forecast_id', sa.String(length=32), nullable=False),
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('property', sa.String(length=64), nullable=False),
    sa.Column('valid_time', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lead_seconds', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('members', _JSON, nullable=True),
    sa.Column('quantiles', _JSON, nullable=True),
    sa.Column('lower', sa.Float(), nullable=True),
    sa.Column('upper', sa.Float(), nullable=True),
    sa.Column('probabilities', _JSON, nullable=True),
    sa.ForeignKeyConstraint(['forecast_id'], ['forecasts.id'], name=op.f('fk_forecast_values_forecast_id_forecasts'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_values'))
    )
    op.create_index(op.f('ix_forecast_values_forecast_id'), 'forecast_values', ['forecast_id'], unique=False)
    op.create_index('ix_forecast_values_by_time', 'forecast_values', ['twin_id', 'property', 'valid_time'],
                    unique=False)
    with op.batch_alter_table('ml_retrain_policies') as batch:
        batch.add_column(sa.Column('skill', _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ml_retrain_policies') as batch:
        batch.drop_column('skill')
    op.drop_index('ix_forecast_values_by_time', table_name='forecast_values')
    op.drop_index(op.f('ix_forecast_values_forecast_id'), table_name='forecast_values')
    op.drop_table('forecast_values')
    op.drop_index('ix_forecasts_by_issue', table_name='forecasts')
    op.drop_table('forecasts')
