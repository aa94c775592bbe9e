"""processes: the job list's order over every run

Revision ID: 0037
Revises: 0036
Create Date: 2026-11-28 18:00:00.000000

``GET /ogcapi/jobs`` lists runs newest first by keyset (``created_at``, ``id``): an admin's list, over every run,
reads its page from this index instead of sorting the whole table.
"""

from __future__ import annotations

from alembic import op

revision = '0037'
down_revision = '0036'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_workflow_runs_created', 'workflow_runs', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_workflow_runs_created', table_name='workflow_runs')
