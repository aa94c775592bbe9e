"""twins: when the engine deletes a twin

Revision ID: 0036
Revises: 0035
Create Date: 2026-11-29 12:00:00.000000

Twins gain ``expires_at``: a what-if run's fork is deleted ``what_if_ttl`` after it was made (the expiry loop
finds the due ones by its index), so what-ifs are kept long enough to be looked at again and never pile up.
Existing twins expire never (null), what-ifs made before included.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import twinengine.store.base

revision = '0036'
down_revision = '0035'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('twins', sa.Column('expires_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_twins_expires_at'), 'twins', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_twins_expires_at'), table_name='twins')
    op.drop_column('twins', 'expires_at')
