"""dataspace: offers, participants, negotiations, agreements, transfers, accesses

Revision ID: 0038
Revises: 0037
Create Date: 2026-11-28 16:59:12.806943

The data space (``twinengine.dataspace``): participants a provider knows, offers of lake data with their ODRL
policies, the negotiation and transfer processes of both roles (each with the message it owes the other side),
agreements, and every access to the data plane under an agreement.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from twinengine.store.base import UTCDateTime

revision = '0038'
down_revision = '0037'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ds_accesses',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agreement_id', sa.String(length=200), nullable=True),
    sa.Column('transfer_id', sa.Integer(), nullable=True),
    sa.Column('participant', sa.String(length=300), nullable=True),
    sa.Column('file', sa.String(length=500), nullable=True),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ds_accesses'))
    )
    with op.batch_alter_table('ds_accesses', schema=None) as batch_op:
        batch_op.create_index('ix_ds_accesses_agreement', ['agreement_id', 'id'], unique=False)

    op.create_table('ds_negotiations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('provider_pid', sa.String(length=200), nullable=True),
    sa.Column('consumer_pid', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('peer', sa.String(length=300), nullable=False),
    sa.Column('peer_base', sa.String(length=500), nullable=False),
    sa.Column('dataset_id', sa.String(length=200), nullable=True),
    sa.Column('offer_id', sa.String(length=200), nullable=True),
    sa.Column('offer', sa.Text(), nullable=True),
    sa.Column('offered_by', sa.String(length=10), nullable=True),
    sa.Column('agreement_id', sa.String(length=200), nullable=True),
    sa.Column('purpose', sa.String(length=200), nullable=True),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('then_transfer', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('manual', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('pending', sa.String(length=30), nullable=True),
    sa.Column('pending_detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('due_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ds_negotiations')),
    sa.UniqueConstraint('role', 'consumer_pid', name=op.f('uq_ds_negotiations_role_consumer_pid')),
    sa.UniqueConstraint('role', 'provider_pid', name=op.f('uq_ds_negotiations_role_provider_pid'))
    )
    with op.batch_alter_table('ds_negotiations', schema=None) as batch_op:
        batch_op.create_index('ix_ds_negotiations_due', ['due_at'], unique=False)

    op.create_table('ds_offers',
    sa.Column('id', sa.String(length=80), nullable=False),
    sa.Column('dataset_id', sa.String(length=80), nullable=False),
    sa.Column('did', sa.String(length=500), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('keywords', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('policy', sa.Text(), nullable=False),
    sa.Column('manual', sa.Boolean(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('owner_group', sa.String(length=64), nullable=True),
    sa.Column('owner_twin', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ds_offers'))
    )
    with op.batch_alter_table('ds_offers', schema=None) as batch_op:
        batch_op.create_index('ix_ds_offers_dataset', ['dataset_id'], unique=True)

    op.create_table('ds_participants',
    sa.Column('did', sa.String(length=300), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=True),
    sa.Column('organisation', sa.String(length=200), nullable=True),
    sa.Column('groups', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('spatial', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('added_by', sa.String(length=64), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('did', name=op.f('pk_ds_participants'))
    )
    op.create_table('ds_transfers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('provider_pid', sa.String(length=200), nullable=True),
    sa.Column('consumer_pid', sa.String(length=200), nullable=True),
    sa.Column('agreement_id', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('format', sa.String(length=100), nullable=False),
    sa.Column('peer', sa.String(length=300), nullable=False),
    sa.Column('peer_base', sa.String(length=500), nullable=False),
    sa.Column('data_address', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('token_expires_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('target', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('landed', sa.String(length=500), nullable=True),
    sa.Column('files', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('pending', sa.String(length=30), nullable=True),
    sa.Column('pending_detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('due_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ds_transfers')),
    sa.UniqueConstraint('role', 'consumer_pid', name=op.f('uq_ds_transfers_role_consumer_pid')),
    sa.UniqueConstraint('role', 'provider_pid', name=op.f('uq_ds_transfers_role_provider_pid'))
    )
    with op.batch_alter_table('ds_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_ds_transfers_due', ['due_at'], unique=False)
        batch_op.create_index('ix_ds_transfers_token', ['token_hash'], unique=False)

    op.create_table('ds_agreements',
    sa.Column('key', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('negotiation_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=300), nullable=False),
    sa.Column('consumer', sa.String(length=300), nullable=False),
    sa.Column('dataset_id', sa.String(length=200), nullable=False),
    sa.Column('offer_id', sa.String(length=200), nullable=False),
    sa.Column('policy', sa.Text(), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=True),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('peer_base', sa.String(length=500), nullable=False),
    sa.Column('signed_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('finalized', sa.Boolean(), nullable=False),
    sa.Column('transfers', sa.Integer(), nullable=False),
    sa.Column('revoked_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['negotiation_id'], ['ds_negotiations.id'], name=op.f('fk_ds_agreements_negotiation_id_ds_negotiations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_ds_agreements')),
    sa.UniqueConstraint('id', 'role', name=op.f('uq_ds_agreements_id_role'))
    )


def downgrade() -> None:
    op.drop_table('ds_agreements')
    with op.batch_alter_table('ds_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_ds_transfers_token')
        batch_op.drop_index('ix_ds_transfers_due')

    op.drop_table('ds_transfers')
    op.drop_table('ds_participants')
    with op.batch_alter_table('ds_offers', schema=None) as batch_op:
        batch_op.drop_index('ix_ds_offers_dataset')

    op.drop_table('ds_offers')
    with op.batch_alter_table('ds_negotiations', schema=None) as batch_op:
        batch_op.drop_index('ix_ds_negotiations_due')

    op.drop_table('ds_negotiations')
    with op.batch_alter_table('ds_accesses', schema=None) as batch_op:
        batch_op.drop_index('ix_ds_accesses_agreement')

    op.drop_table('ds_accesses')
