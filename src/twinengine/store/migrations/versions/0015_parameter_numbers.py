"""twins: the parameter index holds every top-level parameter, numbers and booleans too

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24 09:00:00.000000

``twin_parameters`` held only text parameters, so a fleet filter ``parameter=area_km2>100``, a boolean
test or a group ``by=parameter:area_km2`` read each twin's JSON. Now it has a row for each top-level
parameter: its JSON type (``kind``), its text (strings of at most 200 characters, as before), its number
(``num_value``: numbers, booleans as 1 and 0) and, for numbers and booleans, the text a group key shows
(``label``, as the store prints the JSON value). ``(name, kind, num_value, twin_id)`` serves number and
boolean tests. The table is rebuilt here from the twins' JSON in SQL, with the statement
``twins/parameter_index.py`` runs at create, fork and ``twin db rebuild-state``. On SQLite the table has no
rowid: a page's or a group's seek per twin by (twin_id, name) finds the whole row in one lookup.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_DOUBLE_MAX = '1.7976931348623157e308'
_COLUMNS = 'twin_id, name, kind, value, num_value, label'
_ROWS = {
    'postgresql': f"""
SELECT t.id, p.key, jsonb_typeof(p.value),
  CASE WHEN jsonb_typeof(p.value) = 'string' AND char_length(p.value #>> '{{}}') <= 200
       THEN p.value #>> '{{}}' END,
  CASE jsonb_typeof(p.value)
    WHEN 'number' THEN CASE WHEN abs((p.value #>> '{{}}')::numeric) <= {_DOUBLE_MAX}
                            THEN (p.value #>> '{{}}')::double precision END
    WHEN 'boolean' THEN CASE WHEN p.value = 'true'::jsonb THEN 1.0::double precision
                             ELSE 0.0::double precision END END,
  CASE WHEN jsonb_typeof(p.value) IN ('number', 'boolean') THEN p.value #>> '{{}}' END
FROM twins AS t CROSS JOIN LATERAL jsonb_each(t.parameters) AS p
WHERE jsonb_typeof(t.parameters) = 'object' AND char_length(p.key) <= 64""",
    'sqlite': """
SELECT t.id, p.key,
  CASE p.type WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number'
              WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' ELSE p.type END,
  CASE WHEN p.type = 'text' AND length(p.value) <= 200 THEN p.value END,
  CASE WHEN p.type IN ('integer', 'real') THEN CAST(p.value AS REAL)
       WHEN p.type = 'true' THEN 1.0 WHEN p.type = 'false' THEN 0.0 END,
  CASE WHEN p.type IN ('integer', 'real', 'true', 'false') THEN CAST(p.value AS TEXT) END
FROM twins AS t, json_each(t.parameters) AS p
WHERE json_type(t.parameters) = 'object' AND length(p.key) <= 64""",
}
# 0012's rows: text parameters only.
_TEXT_ROWS = {
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


def _dialect() -> str:
    return 'postgresql' if op.get_bind().dialect.name == 'postgresql' else 'sqlite'


def _create_table(*columns: sa.Column, **options: bool) -> None:  # type: ignore[type-arg]
    op.create_table('twin_parameters',
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    *columns,
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_twin_parameters_twin_id_twins'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('twin_id', 'name', name=op.f('pk_twin_parameters')),
    **options
    )


def upgrade() -> None:
    op.drop_index('ix_twin_parameters_value', table_name='twin_parameters')
    op.drop_table('twin_parameters')
    _create_table(sa.Column('kind', sa.String(length=8), nullable=False),
                  sa.Column('value', sa.String(length=200), nullable=True),
                  sa.Column('num_value', sa.Float(), nullable=True),
                  sa.Column('label', sa.Text(), nullable=True), sqlite_with_rowid=False)
    op.execute(f'INSERT INTO twin_parameters ({_COLUMNS}){_ROWS[_dialect()]}')
    op.create_index('ix_twin_parameters_value', 'twin_parameters', ['name', 'value', 'twin_id'], unique=False)
    op.create_index('ix_twin_parameters_number', 'twin_parameters', ['name', 'kind', 'num_value', 'twin_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_twin_parameters_number', table_name='twin_parameters')
    op.drop_index('ix_twin_parameters_value', table_name='twin_parameters')
    op.drop_table('twin_parameters')
    _create_table(sa.Column('value', sa.String(length=200), nullable=False))
    op.execute(_TEXT_ROWS[_dialect()])
    op.create_index('ix_twin_parameters_value', 'twin_parameters', ['name', 'value', 'twin_id'], unique=False)
