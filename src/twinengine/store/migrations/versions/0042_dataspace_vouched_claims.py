"""dataspace: what the data space's shared identity provider said about each participant

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-01 01:00:00.000000

A provider trusting a shared identity provider (``dataspace_claims_provider``) records, per participant, the
organisation and groups that provider's token for the participant's service named, and until when that counts:
the policies judge them beside the participant register.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from twinengine.store.base import UTCDateTime

revision = '0042'
down_revision = '0041'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ds_vouched_claims',
        sa.Column('did', sa.String(length=300), nullable=False),
        sa.Column('issuer', sa.String(length=500), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('organisation', sa.String(length=200), nullable=True),
        sa.Column('groups', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('vouched_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('good_until', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('did', name=op.f('pk_ds_vouched_claims')),
    )


def downgrade() -> None:
    op.drop_table('ds_vouched_claims')
