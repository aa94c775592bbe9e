"""twins: a numeric copy of each state head's value, indexed by (property, kind, twin, number)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 07:10:00.000000

Fleet filters and aggregates over a state property read ``state_heads.num_value`` (the value when it is a
finite JSON number, NULL otherwise) instead of parsing each head's JSON. Existing heads are backfilled here
in one UPDATE; writes and ``twin db rebuild-state`` fill the column from then on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# The value when it is a JSON number (not a boolean) within the range of a double; NULL otherwise.
_POSTGRESQL = """
UPDATE state_heads SET num_value = CASE
    WHEN jsonb_typeof(value) = 'number' AND abs((value #>> '{}')::numeric) <= 1.7976931348623157e308
    THEN (value #>> '{}')::double precision END
"""
_SQLITE = """
UPDATE state_heads SET num_value = CASE
    WHEN json_type(value) IN ('integer', 'real') AND abs(json_extract(value, '$')) <= 1.7976931348623157e308
    THEN json_extract(value, '$') END
"""


def upgrade() -> None:
    with op.batch_alter_table('state_heads') as batch:
        batch.add_column(sa.Column('num_value', sa.Float(), nullable=True))
    op.execute(_POSTGRESQL if op.get_bind().dialect.name == 'postgresql' else _SQLITE)
    op.create_index('ix_state_heads_numbers', 'state_heads', ['property', 'kind', 'twin_id', 'num_value'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_state_heads_numbers', table_name='state_heads')
    with op.batch_alter_table('state_heads') as batch:
        batch.drop_column('num_value')
