"""auth: groups of identities (local or asserted by an identity provider), group-owned twins and grants to
groups, scoped tokens, signing keys that rotate

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-25 19:00:00.000000

Twins gain ``owner_group`` (a group-owned twin belongs to the group's members; ``owner`` keeps who created it),
and the fleet's covering index ``ix_twins_access`` gains the column, so the access filter still reads no table
row. Tokens gain the limits of a scoped token. The signing keys' public halves and generations are kept in
the store, so every engine sharing it verifies what any of them signed, across a rotation.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'groups',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_groups')),
    )
    op.create_table(
        'group_memberships',
        sa.Column('group', sa.String(length=64), nullable=False),
        sa.Column('identity', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=80), nullable=False),
        sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['group'], ['groups.name'], name=op.f('fk_group_memberships_group_groups'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['identity'], ['identities.name'],
                                name=op.f('fk_group_memberships_identity_identities'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('group', 'identity', 'source', name=op.f('pk_group_memberships')),
    )
    op.create_index(op.f('ix_group_memberships_identity'), 'group_memberships', ['identity'], unique=False)

    op.create_table(
        'twin_group_grants',
        sa.Column('twin_id', sa.String(length=32), nullable=False),
        sa.Column('group', sa.String(length=64), nullable=False),
        sa.Column('permission', sa.String(length=16), nullable=False),
        sa.Column('granted_by', sa.String(length=64), nullable=False),
        sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['group'], ['groups.name'], name=op.f('fk_twin_group_grants_group_groups'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_twin_group_grants_twin_id_twins'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('twin_id', 'group', name=op.f('pk_twin_group_grants')),
    )
    op.create_index(op.f('ix_twin_group_grants_group'), 'twin_group_grants', ['group'], unique=False)
    # A plain column, not a foreign key: SQLite adds a constraint only by rebuilding the table, which would
    # cascade to every row that refers to a twin. Groups are never deleted while they own twins (auth/groups.py).
    op.add_column('twins', sa.Column('owner_group', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_twins_owner_group'), 'twins', ['owner_group'], unique=False)
    op.drop_index('ix_twins_access', table_name='twins')
    op.create_index('ix_twins_access', 'twins', ['id', 'owner', 'owner_group', 'app_name', 'app_version'],
                    unique=False)

    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    op.add_column('api_tokens', sa.Column('scopes', json, nullable=True))
    op.add_column('api_tokens', sa.Column('twins', json, nullable=True))
    op.add_column('api_tokens', sa.Column('parent_jti', sa.String(length=64), nullable=True))
    op.add_column('api_tokens', sa.Column('audience', sa.String(length=200), nullable=True))

    op.create_table(
        'signing_keys',
        sa.Column('generation', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('kid', sa.String(length=64), nullable=False),
        sa.Column('public_pem', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('promoted_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('generation', name=op.f('pk_signing_keys')),
        sa.UniqueConstraint('kid', name=op.f('uq_signing_keys_kid')),
    )


def downgrade() -> None:
    op.drop_table('signing_keys')
    op.drop_column('api_tokens', 'audience')
    op.drop_column('api_tokens', 'parent_jti')
    op.drop_column('api_tokens', 'twins')
    op.drop_column('api_tokens', 'scopes')
    op.drop_index('ix_twins_access', table_name='twins')
    op.create_index('ix_twins_access', 'twins', ['id', 'owner', 'app_name', 'app_version'], unique=False)
    op.drop_index(op.f('ix_twins_owner_group'), table_name='twins')
    op.drop_column('twins', 'owner_group')
    op.drop_index(op.f('ix_twin_group_grants_group'), table_name='twin_group_grants')
    op.drop_table('twin_group_grants')
    op.drop_index(op.f('ix_group_memberships_identity'), table_name='group_memberships')
    op.drop_table('group_memberships')
    op.drop_table('groups')
