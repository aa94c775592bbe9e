"""training sites: where a training run trains, and why

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-27 10:00:00.000000

Training runs gain ``site`` (the compute site placement chose: the engine's own, or a Dask or Slurm site whose
workers run the app's sandboxed training worker) and ``placement`` (the reasons, and the sites a run lost).
Runs queued before trained on the engine's own site: null.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('ml_training_runs', sa.Column('site', sa.String(length=64), nullable=True))
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    op.add_column('ml_training_runs', sa.Column('placement', json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ml_training_runs', schema=None) as batch_op:
        batch_op.drop_column('placement')
        batch_op.drop_column('site')
