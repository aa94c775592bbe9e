"""ml: a training run stopped on request ends ``canceled``, as workflow runs and openEO jobs do

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-25 01:00:00.000000

Training runs said ``cancelled`` and workflow runs ``canceled``: a client polling both, or the portal's
status colours, had to know two spellings of one state. Rows that ended before keep their meaning under the
one spelling.
"""

from __future__ import annotations

from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE ml_training_runs SET status = 'canceled' WHERE status = 'cancelled'")


def downgrade() -> None:
    op.execute("UPDATE ml_training_runs SET status = 'cancelled' WHERE status = 'canceled'")
