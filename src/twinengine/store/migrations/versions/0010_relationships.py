"""twins: relationships between twins, versioned by valid time, and a clock per relationship type

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 03:50:00.000000

Links are closed, never deleted, so the graph can be read as of a time; ``link_clocks`` numbers the changes
of each type and serialises them (its row is locked by every change).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import twinengine.store.base

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('link_clocks',
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('changed_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('type', name=op.f('pk_link_clocks'))
    )
    op.create_table('twin_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=32), nullable=False),
    sa.Column('target_id', sa.String(length=32), nullable=False),
    sa.Column('valid_from', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_to', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('opened_revision', sa.Integer(), nullable=False),
    sa.Column('closed_revision', sa.Integer(), nullable=True),
    sa.Column('opened_by', sa.String(length=64), nullable=False),
    sa.Column('closed_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['source_id'], ['twins.id'], name=op.f('fk_twin_links_source_id_twins'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_id'], ['twins.id'], name=op.f('fk_twin_links_target_id_twins'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_twin_links'))
    )
    op.create_index('ix_twin_links_in', 'twin_links', ['target_id', 'type', 'valid_from'], unique=False)
    op.create_index('ix_twin_links_out', 'twin_links', ['source_id', 'type', 'valid_from'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_twin_links_out', table_name='twin_links')
    op.drop_index('ix_twin_links_in', table_name='twin_links')
    op.drop_table('twin_links')
    op.drop_table('link_clocks')
