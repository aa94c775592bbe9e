"""workflows: a run keeps the facts of its provenance (lineage), its PROV document is rendered on request

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-24 10:00:00.000000

A run's end built a W3C PROV document (0.8 ms of the interpreter and about 200 objects of reference cycles
per run). Runs now keep only what the document needs beyond their own columns (``lineage``: processes,
inputs, state writes, the app archive's checksum, informant runs, the engine's version); the document is
rendered from them when asked for. Runs that ended before keep the document they stored (``provenance``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workflow_runs') as batch:
        batch.add_column(sa.Column('lineage', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()),
                                                                     'postgresql'), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workflow_runs') as batch:
        batch.drop_column('lineage')
