"""group ownership: lake datasets and apps owned by a group, and groups that hold the right to publish apps

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-25 22:20:00.000000

Lake identifiers and app versions gain ``owner_group`` (a group-owned dataset is readable by the group's
members; a group's app is published again only by its members), and groups gain ``publish`` (their members
may publish the group's apps whatever their role). Plain columns, not foreign keys, as for twins (0022): a
group is deleted only once what it owns is handed on (auth.group_delete).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('lake_dids', sa.Column('owner_group', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_lake_dids_owner_group'), 'lake_dids', ['owner_group'], unique=False)
    op.add_column('app_versions', sa.Column('owner_group', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_app_versions_owner_group'), 'app_versions', ['owner_group'], unique=False)
    op.add_column('groups', sa.Column('publish', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    op.drop_column('groups', 'publish')
    op.drop_index(op.f('ix_app_versions_owner_group'), table_name='app_versions')
    op.drop_column('app_versions', 'owner_group')
    op.drop_index(op.f('ix_lake_dids_owner_group'), table_name='lake_dids')
    op.drop_column('lake_dids', 'owner_group')
