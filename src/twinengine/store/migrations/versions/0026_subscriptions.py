"""subscriptions: subscriptions to twins' conditions, their delivery outbox and each try

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-25 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import twinengine.store.base

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_TIME = twinengine.store.base.UTCDateTime(timezone=True)
_LOG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('subscriptions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('owner_role', sa.String(length=16), nullable=False),
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('twin_name', sa.String(length=64), nullable=False),
    sa.Column('when', sa.String(length=200), nullable=False),
    sa.Column('property', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('operator', sa.String(length=2), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('stale_seconds', sa.Float(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=2048), nullable=False),
    sa.Column('secret', sa.String(length=128), nullable=True),
    sa.Column('created_at', _TIME, nullable=False),
    sa.Column('last_revision', sa.Integer(), nullable=False),
    sa.Column('last_value', _JSON, nullable=True),
    sa.Column('last_met', sa.Boolean(), nullable=True),
    sa.Column('last_event', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['owner'], ['identities.name'], name=op.f('fk_subscriptions_owner_identities'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_subscriptions_twin_id_twins'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions'))
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriptions_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscriptions_twin_id'), ['twin_id'], unique=False)
    op.create_table('subscription_deliveries',
    sa.Column('id', _LOG_ID, autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.String(length=32), nullable=False),
    sa.Column('event_key', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('payload', _JSON, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', _TIME, nullable=False),
    sa.Column('next_attempt_at', _TIME, nullable=False),
    sa.Column('sent_at', _TIME, nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'],
                            name=op.f('fk_subscription_deliveries_subscription_id_subscriptions'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_deliveries')),
    sa.UniqueConstraint('subscription_id', 'event_key',
                        name=op.f('uq_subscription_deliveries_subscription_id_event_key'))
    )
    with op.batch_alter_table('subscription_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_subscription_deliveries_due', ['status', 'next_attempt_at'], unique=False)
    op.create_table('subscription_attempts',
    sa.Column('id', _LOG_ID, autoincrement=True, nullable=False),
    sa.Column('delivery_id', _LOG_ID, nullable=False),
    sa.Column('at', _TIME, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['subscription_deliveries.id'],
                            name=op.f('fk_subscription_attempts_delivery_id_subscription_deliveries'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_attempts'))
    )
    with op.batch_alter_table('subscription_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_attempts_delivery_id'), ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_table('subscription_attempts')
    op.drop_table('subscription_deliveries')
    op.drop_table('subscriptions')
