"""dataspace: the callback address a provider's proposal goes to, and where it came from

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-08 12:00:00.000000

A provider proposing an offer sends its initial ContractOfferMessage to the consumer's callback address: the one
the register records for that participant (``ds_participants.callback``), else the one the participant gave in
its own messages, else ``<its DSP base>/callback``; the negotiation keeps which (``callback_source``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0044'
down_revision = '0043'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ds_participants') as batch:
        batch.add_column(sa.Column('callback', sa.String(length=500), nullable=True))
    with op.batch_alter_table('ds_negotiations') as batch:
        batch.add_column(sa.Column('callback_source', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ds_negotiations') as batch:
        batch.drop_column('callback_source')
    with op.batch_alter_table('ds_participants') as batch:
        batch.drop_column('callback')
