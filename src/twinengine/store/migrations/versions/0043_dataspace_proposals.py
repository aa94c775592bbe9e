"""dataspace: negotiations a provider starts, addressed to a user or group of the consumer's engine

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-01 12:00:00.000000

A provider's proposal (its initial ContractOfferMessage) names, in the offer's ``assignee``, whom on the
consumer's engine it is for: a user, a group (``group:NAME``) or nobody in particular (that engine's admins). The
consumer's negotiation keeps it until one of them takes the offer up.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0043'
down_revision = '0042'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ds_negotiations') as batch:
        batch.add_column(sa.Column('addressee', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ds_negotiations') as batch:
        batch.drop_column('addressee')
