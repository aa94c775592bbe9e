"""usage transferred and stored: what a run's staging copied and what its outputs occupy in the lake

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-26 14:30:00.000000

Usage records gain ``bytes_transferred`` (the bytes the transfers its staging made moved between endpoints)
and ``bytes_stored`` (the sizes of the outputs it kept in the lake). Records written before count 0 of both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('compute_usage', sa.Column('bytes_transferred', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('compute_usage', sa.Column('bytes_stored', sa.BigInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('compute_usage', schema=None) as batch_op:
        batch_op.drop_column('bytes_stored')
        batch_op.drop_column('bytes_transferred')
