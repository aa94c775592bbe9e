"""streams: a function on arrival is paused after a run of dead-lettered batches, until resumed

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-25 16:00:00.000000

A deterministic bug in a function dead-lettered every record of its stream, one after the other, each after
its retries. The consumer's checkpoint row now says whether the function is paused, why, since when, and the
offset of the first record of the failed run, from which ``resume`` takes the records again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import twinengine.store.base

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stream_consumers') as batch:
        batch.add_column(sa.Column('paused_reason', sa.Text(), nullable=True))
        batch.add_column(sa.Column('paused_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('paused_from', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stream_consumers') as batch:
        batch.drop_column('paused_from')
        batch.drop_column('paused_at')
        batch.drop_column('paused_reason')
