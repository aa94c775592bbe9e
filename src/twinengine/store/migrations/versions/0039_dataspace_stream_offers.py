"""dataspace: offers of a stream's history or of a run's results, and the snapshot each transfer of a stream
offer serves

Revision ID: 0039
Revises: 0038
Create Date: 2026-11-29 23:10:00.000000

An offer names a lake file or dataset (``did``), a twin's stream (``stream``, the twin in ``owner_twin``) or a
workflow run whose results it offers (``run``; ``did`` is its results dataset). A ``live`` stream offer is
pushed as the stream grows, part by part, until the transfer is suspended or ended.
A transfer under a stream offer serves the history as it stood when the provider accepted the transfer: that
snapshot is written to the lake once, checksummed, and its DID kept on the transfer (``snapshot``), so a
resumed pull reads the same bytes and the provider keeps what left.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0039'
down_revision = '0038'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ds_offers') as batch:
        batch.add_column(sa.Column('stream', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('run', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('live', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('ds_transfers') as batch:
        batch.add_column(sa.Column('snapshot', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ds_transfers') as batch:
        batch.drop_column('snapshot')
    with op.batch_alter_table('ds_offers') as batch:
        batch.drop_column('live')
        batch.drop_column('run')
        batch.drop_column('stream')
