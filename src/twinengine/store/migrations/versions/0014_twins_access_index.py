"""twins: an index of (id, owner, app_name, app_version), what fleet aggregates read of each twin

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23 12:30:00.000000

An aggregate over a fleet joins each matching twin by id for its owner (the access filter) and app (a group
key). This index holds all of that, so the join reads no table row: "mean by app" over 100,000 twins took
203 ms and now 63 ms on SQLite, "p50, p90 by tag" 312 and 141 ms, once the planner has statistics (the
store runs ``ANALYZE`` on start, ``store/migrate.py``; without them SQLite keeps the primary key's index).
"""

from __future__ import annotations

from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_twins_access', 'twins', ['id', 'owner', 'app_name', 'app_version'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_twins_access', table_name='twins')
