"""usage GPU-seconds: the GPUs a run's sandboxed workers held, times the seconds they held them

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-27 09:00:00.000000

Usage records gain ``gpu_seconds`` (read from the driver through NVML: the GPUs on which a worker's processes
held a context, times the seconds of the calls that held them). Records written before count 0.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('compute_usage', sa.Column('gpu_seconds', sa.Float(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('compute_usage', schema=None) as batch_op:
        batch_op.drop_column('gpu_seconds')
