"""fleets: twin tags and locations (bbox columns), change counters for background loops

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 03:50:00.000000

Twins get a tag list, a GeoJSON location and its bounding box in four indexed columns; ``twin_tags`` is the
index of tags. ``change_counters`` and ``change_log`` let background loops learn what changed without
rescanning every twin; the counters start at 0, so a loop's first look reloads everything anyway.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_BBOX = ('bbox_minx', 'bbox_miny', 'bbox_maxx', 'bbox_maxy')
_TOPICS = ('twins', 'apps', 'bindings')


def upgrade() -> None:
    op.add_column('twins', sa.Column('tags', _JSON, nullable=True))
    op.add_column('twins', sa.Column('location', _JSON, nullable=True))
    for name in _BBOX:
        op.add_column('twins', sa.Column(name, sa.Float(), nullable=True))
        op.create_index(op.f(f'ix_twins_{name}'), 'twins', [name], unique=False)
    op.create_table('twin_tags',
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_twin_tags_twin_id_twins'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tag', 'twin_id', name=op.f('pk_twin_tags'))
    )
    op.create_index(op.f('ix_twin_tags_twin_id'), 'twin_tags', ['twin_id'], unique=False)
    counters = op.create_table('change_counters',
    sa.Column('topic', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('topic', name=op.f('pk_change_counters'))
    )
    op.create_table('change_log',
    sa.Column('topic', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('topic', 'value', 'key', name=op.f('pk_change_log'))
    )
    op.bulk_insert(counters, [{'topic': t, 'value': 0} for t in _TOPICS])
    op.create_index('ix_workflow_triggers_due', 'workflow_triggers', ['kind', 'next_fire_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_workflow_triggers_due', table_name='workflow_triggers')
    op.drop_table('change_log')
    op.drop_table('change_counters')
    op.drop_index(op.f('ix_twin_tags_twin_id'), table_name='twin_tags')
    op.drop_table('twin_tags')
    with op.batch_alter_table('twins') as batch:
        for name in _BBOX:
            batch.drop_index(f'ix_twins_{name}')
        for name in ('bbox_maxy', 'bbox_maxx', 'bbox_miny', 'bbox_minx', 'location', 'tags'):
            batch.drop_column(name)
