"""runs by graph: placement sizes queued work by what the same graph took before

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-26 18:30:00.000000

Placement's queue term (``workflows.site_queues``) looks up the finished runs of each queued run's graph
(``graph_sha256``) and their usage records at every placement with a choice to make: an index on the graph.
"""

from __future__ import annotations

from alembic import op

revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_workflow_runs_graph', 'workflow_runs', ['graph_sha256'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_workflow_runs_graph', table_name='workflow_runs')
