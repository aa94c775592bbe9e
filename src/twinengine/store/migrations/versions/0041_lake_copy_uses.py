"""lake: how often the copies landed under a data-space agreement were used on this engine

Revision ID: 0041
Revises: 0040
Create Date: 2026-11-30 07:00:00.000000

A consumer's engine counts each use of the copies it landed under an agreement (a download of a file, an EDR
query or a run's ``load_collection`` of the copy's collection, a CWL step staging a file), one row per
agreement: a ``count`` in the agreement's policy limits these uses as the provider limits transfers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from twinengine.store.base import UTCDateTime

revision = '0041'
down_revision = '0040'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'lake_copy_uses',
        sa.Column('agreement', sa.String(length=200), nullable=False),
        sa.Column('uses', sa.Integer(), nullable=False),
        sa.Column('last_at', UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('agreement', name=op.f('pk_lake_copy_uses')),
    )


def downgrade() -> None:
    op.drop_table('lake_copy_uses')
