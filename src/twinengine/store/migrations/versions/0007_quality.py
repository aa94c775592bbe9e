"""quality: retraining buffers leave records out of their fills by quality flag

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 01:30:00.000000

Quality flags themselves live with the records in the stream log (columns ``_quality`` and ``_checks``),
not in the store: only the buffers' policy is a column here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('retrain_buffers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('exclude_quality', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('retrain_buffers', schema=None) as batch_op:
        batch_op.drop_column('exclude_quality')
