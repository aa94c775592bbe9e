"""twins: a numeric copy of each state head's value; an index of twins' text parameters; tags by twin

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 07:10:00.000000

Fleet filters and aggregates over a state property read ``state_heads.num_value`` (the value when it is a
finite JSON number, NULL otherwise), indexed by (property, kind, twin, number), instead of parsing each
head's JSON. ``twin_parameters`` holds each twin's top-level parameters whose value is text of at most 200
characters, so a filter ``parameter=station=RR-01`` seeks an index. Both are backfilled here in SQL; writes
(and ``twin db rebuild-state``) fill them from then on. The tags' index by twin now holds the tag too, so
grouping by tag reads no table row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_DOUBLE_MAX = '1.7976931348623157e308'
# The value when it is a JSON number (not a boolean) within the range of a double; NULL otherwise.
_HEADS = {
    'postgresql': f"""
UPDATE state_heads SET num_value = CASE WHEN jsonb_typeof(value) = 'number' THEN
    CASE WHEN abs((value #>> '{{}}')::numeric) <= {_DOUBLE_MAX} THEN (value #>> '{{}}')::double precision END END""",
    'sqlite': f"""
UPDATE state_heads SET num_value = CASE WHEN json_type(value) IN ('integer', 'real') THEN
    CASE WHEN abs(json_extract(value, '$')) <= {_DOUBLE_MAX} THEN json_extract(value, '$') END END""",
}
_PARAMETERS = {
    'postgresql': """
INSERT INTO twin_parameters (twin_id, name, value)
SELECT t.id, p.key, p.value #>> '{}' FROM twins AS t, jsonb_each(t.parameters) AS p
WHERE jsonb_typeof(t.parameters) = 'object' AND jsonb_typeof(p.value) = 'string'
  AND char_length(p.value #>> '{}') <= 200 AND char_length(p.key) <= 64""",
    'sqlite': """
INSERT INTO twin_parameters (twin_id, name, value)
SELECT t.id, p.key, p.value FROM twins AS t, json_each(t.parameters) AS p
WHERE json_type(t.parameters) = 'object' AND p.type = 'text' AND length(p.value) <= 200 AND length(p.key) <= 64""",
}


def upgrade() -> None:
    dialect = 'postgresql' if op.get_bind().dialect.name == 'postgresql' else 'sqlite'
    with op.batch_alter_table('state_heads') as batch:
        batch.add_column(sa.Column('num_value', sa.Float(), nullable=True))
    op.execute(_HEADS[dialect])
    op.create_index('ix_state_heads_numbers', 'state_heads', ['property', 'kind', 'twin_id', 'num_value'],
                    unique=False)
    op.create_table('twin_parameters',
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_twin_parameters_twin_id_twins'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('twin_id', 'name', name=op.f('pk_twin_parameters'))
    )
    op.execute(_PARAMETERS[dialect])
    op.create_index('ix_twin_parameters_value', 'twin_parameters', ['name', 'value', 'twin_id'], unique=False)
    op.drop_index('ix_twin_tags_twin_id', table_name='twin_tags')
    op.create_index('ix_twin_tags_twin_id', 'twin_tags', ['twin_id', 'tag'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_twin_tags_twin_id', table_name='twin_tags')
    op.create_index('ix_twin_tags_twin_id', 'twin_tags', ['twin_id'], unique=False)
    op.drop_index('ix_twin_parameters_value', table_name='twin_parameters')
    op.drop_table('twin_parameters')
    op.drop_index('ix_state_heads_numbers', table_name='state_heads')
    with op.batch_alter_table('state_heads') as batch:
        batch.drop_column('num_value')
