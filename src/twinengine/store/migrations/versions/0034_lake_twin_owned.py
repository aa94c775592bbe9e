"""lake: identifiers owned by a twin

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-29 09:00:00.000000

Lake identifiers gain ``owner_twin``: data derived from a twin and registered for it (a twin's gauge readings
as a station table, a field computed from its rain) is read by exactly those who may read the twin, wherever
it is listed (identifiers, STAC, the EDR collections the portal's map draws). Existing identifiers keep their
owner, group or origin.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0034'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('lake_dids', sa.Column('owner_twin', sa.String(length=32), nullable=True))
    op.create_index(op.f('ix_lake_dids_owner_twin'), 'lake_dids', ['owner_twin'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_lake_dids_owner_twin'), table_name='lake_dids')
    op.drop_column('lake_dids', 'owner_twin')  # ALTER TABLE DROP COLUMN: no rebuild, no cascade to replicas
