"""foundation: identities, tokens, audit log, catalogue, twins and their state log

Revision ID: 0001
Revises:
Create Date: 2026-11-21 19:51:00.517343
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import twinengine.store.base

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('major', sa.Integer(), nullable=False),
    sa.Column('minor', sa.Integer(), nullable=False),
    sa.Column('patch', sa.Integer(), nullable=False),
    sa.Column('prerelease', sa.String(length=64), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('domain', sa.String(length=64), nullable=False),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.Column('manifest', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('archive_sha256', sa.String(length=64), nullable=False),
    sa.Column('archive_size', sa.Integer(), nullable=False),
    sa.Column('files', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('published_by', sa.String(length=64), nullable=False),
    sa.Column('published_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_versions')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_app_versions_name_version'))
    )
    with op.batch_alter_table('app_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_app_versions_domain'), ['domain'], unique=False)
        batch_op.create_index('ix_app_versions_name_order', ['name', 'major', 'minor', 'patch'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=True),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('target', sa.String(length=400), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_actor_at', ['actor', 'at'], unique=False)
        batch_op.create_index('ix_audit_events_at', ['at'], unique=False)

    op.create_table('identities',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_identities'))
    )
    op.create_table('api_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('identity', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('issued_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['identity'], ['identities.name'], name=op.f('fk_api_tokens_identity_identities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_api_tokens'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_identity'), ['identity'], unique=False)

    op.create_table('twins',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('app_name', sa.String(length=64), nullable=False),
    sa.Column('app_version', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('parameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('origin_id', sa.String(length=32), nullable=True),
    sa.Column('origin_name', sa.String(length=64), nullable=True),
    sa.Column('origin_revision', sa.Integer(), nullable=True),
    sa.Column('head_revision', sa.Integer(), nullable=False),
    sa.Column('created_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['app_versions.id'], name=op.f('fk_twins_app_id_app_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['origin_id'], ['twins.id'], name=op.f('fk_twins_origin_id_twins'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner'], ['identities.name'], name=op.f('fk_twins_owner_identities'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_twins')),
    sa.UniqueConstraint('name', name=op.f('uq_twins_name'))
    )
    with op.batch_alter_table('twins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_twins_app_id'), ['app_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_twins_origin_id'), ['origin_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_twins_owner'), ['owner'], unique=False)

    op.create_table('state_revisions',
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('recorded_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('author', sa.String(length=64), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_state_revisions_twin_id_twins'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('twin_id', 'revision', name=op.f('pk_state_revisions'))
    )
    op.create_table('twin_grants',
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('identity', sa.String(length=64), nullable=False),
    sa.Column('permission', sa.String(length=16), nullable=False),
    sa.Column('granted_by', sa.String(length=64), nullable=False),
    sa.Column('granted_at', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['identity'], ['identities.name'], name=op.f('fk_twin_grants_identity_identities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['twin_id'], ['twins.id'], name=op.f('fk_twin_grants_twin_id_twins'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('twin_id', 'identity', name=op.f('pk_twin_grants'))
    )
    with op.batch_alter_table('twin_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_twin_grants_identity'), ['identity'], unique=False)

    op.create_table('state_values',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('twin_id', sa.String(length=32), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('property', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=True),
    sa.Column('timestamp', twinengine.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['twin_id', 'revision'], ['state_revisions.twin_id', 'state_revisions.revision'], name=op.f('fk_state_values_twin_id_state_revisions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_values')),
    sa.UniqueConstraint('twin_id', 'revision', 'property', 'kind', name=op.f('uq_state_values_twin_id_revision_property_kind'))
    )
    with op.batch_alter_table('state_values', schema=None) as batch_op:
        batch_op.create_index('ix_state_values_by_revision', ['twin_id', 'property', 'kind', 'revision'], unique=False)
        batch_op.create_index('ix_state_values_by_time', ['twin_id', 'property', 'kind', 'timestamp'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('state_values', schema=None) as batch_op:
        batch_op.drop_index('ix_state_values_by_time')
        batch_op.drop_index('ix_state_values_by_revision')

    op.drop_table('state_values')
    with op.batch_alter_table('twin_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_twin_grants_identity'))

    op.drop_table('twin_grants')
    op.drop_table('state_revisions')
    with op.batch_alter_table('twins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_twins_owner'))
        batch_op.drop_index(batch_op.f('ix_twins_origin_id'))
        batch_op.drop_index(batch_op.f('ix_twins_app_id'))

    op.drop_table('twins')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_identity'))

    op.drop_table('api_tokens')
    op.drop_table('identities')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_at')
        batch_op.drop_index('ix_audit_events_actor_at')

    op.drop_table('audit_events')
    with op.batch_alter_table('app_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_app_versions_name_order')
        batch_op.drop_index(batch_op.f('ix_app_versions_domain'))

    op.drop_table('app_versions')
