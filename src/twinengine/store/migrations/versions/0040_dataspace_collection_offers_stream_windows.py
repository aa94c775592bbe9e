"""dataspace: offers of an EDR collection, queried through the transfer's data address; a stream offer's window;
when a consumer's copy is to be deleted

Revision ID: 0040
Revises: 0039
Create Date: 2026-11-30 03:00:00.000000

An offer may name an EDR collection (``collection``, ``scope.name``; ``did`` is the lake dataset behind it): a
transfer under it serves OGC API - EDR queries of that one collection at its data address, each query an access
checked against the agreement's policy, instead of files. A stream offer may serve a window of the stream's
history (``window``: ``since`` and ``until``, ISO 8601 times, or ``last``, seconds before each transfer starts),
by the records' time field. A consumer's transfer under a policy with a ``delete`` duty keeps when its landed
copy is due for deletion (``delete_by``) and when the engine deleted it (``deleted_at``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from twinengine.store.base import UTCDateTime

revision = '0040'
down_revision = '0039'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ds_offers') as batch:
        batch.add_column(sa.Column('collection', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('window', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                                                    'postgresql'), nullable=True))
    with op.batch_alter_table('ds_transfers') as batch:
        batch.add_column(sa.Column('delete_by', UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('deleted_at', UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ds_transfers') as batch:
        batch.drop_column('deleted_at')
        batch.drop_column('delete_by')
    with op.batch_alter_table('ds_offers') as batch:
        batch.drop_column('window')
        batch.drop_column('collection')
