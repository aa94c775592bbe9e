"""twins: state heads derived from the log (backfilled); the time index ends in revision

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 00:59:19.486723

``state_heads`` holds the newest value of each twin's (property, kind), so state reads no longer rank the
whole history. Existing logs are backfilled here, in SQL, from the newest revision of each pair; ``twin db
rebuild-state`` does the same later for any twin whose heads are in doubt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import twinengine.store.base

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_COLUMNS = ('twin_id', 'property', 'kind', 'revision', 'value', 'unit', 'timestamp')


def upgrade() -> None:
    op.create_table('state_heads',
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('property', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=True),
    sa.Column('timestamp', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_state_heads_twin_id_twins'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('twin_id', 'property', 'kind', name=op.f('pk_state_heads'))
    )
    op.drop_index('ix_state_values_by_time', table_name='state_values')
    op.create_index('ix_state_values_by_time', 'state_values', ['twin_id', 'property', 'kind', 'timestamp', 'revision'],
                    unique=False)
    _backfill()


def _backfill() -> None:
    """Copy the newest value of every (twin, property, kind) from the log (values are copied as stored)."""
    values = sa.table('state_values', *(sa.column(c) for c in _COLUMNS))
    heads = sa.table('state_heads', *(sa.column(c) for c in _COLUMNS))
    newest = (sa.select(values.c.twin_id, values.c.property, values.c.kind,
                        sa.func.max(values.c.revision).label('revision'))
              .group_by(values.c.twin_id, values.c.property, values.c.kind)
              .subquery())
    rows = (sa.select(*(values.c[c] for c in _COLUMNS))
            .join(newest, sa.and_(values.c.twin_id == newest.c.twin_id, values.c.property == newest.c.property,
                                  values.c.kind == newest.c.kind, values.c.revision == newest.c.revision)))
    op.execute(heads.insert().from_select(list(_COLUMNS), rows))


def downgrade() -> None:
    op.drop_index('ix_state_values_by_time', table_name='state_values')
    op.create_index('ix_state_values_by_time', 'state_values', ['twin_id', 'property', 'kind', 'timestamp'],
                    unique=False)
    op.drop_table('state_heads')
