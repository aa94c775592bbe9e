"""store: app archives in the store too, for engines on several hosts (engines_share_store)

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-25 19:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from twinengine.store.base import UTCDateTime

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'blobs',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sha256'),
    )


def downgrade() -> None:
    op.drop_table('blobs')
