"""auth: identities get an id that is never reused, and tokens record the id of the identity they were issued to

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-25 17:00:00.000000

Tokens named their identity only by name, so an identity deleted and then created again under the same name
brought the old identity's tokens back to life. A token now works only while the identity it was issued to,
by id, exists. Existing identities get an id each and their tokens that id.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): rebuilding identities would cascade to the rows that refer to it.
    op.add_column('identities', sa.Column('id', sa.String(length=32), nullable=True))
    op.add_column('api_tokens', sa.Column('identity_id', sa.String(length=32), nullable=True))
    conn = op.get_bind()
    identities = sa.table('identities', sa.column('name', sa.String), sa.column('id', sa.String))
    tokens = sa.table('api_tokens', sa.column('identity', sa.String), sa.column('identity_id', sa.String))
    for (name,) in conn.execute(sa.select(identities.c.name)).all():
        conn.execute(identities.update().where(identities.c.name == name).values(id=uuid.uuid4().hex))
    conn.execute(tokens.update().values(identity_id=sa.select(identities.c.id)
                                        .where(identities.c.name == tokens.c.identity).scalar_subquery()))
    op.create_index(op.f('ix_identities_id'), 'identities', ['id'], unique=True)


def downgrade() -> None:
    op.drop_index(op.f('ix_identities_id'), table_name='identities')
    op.drop_column('api_tokens', 'identity_id')  # ALTER TABLE DROP COLUMN: no rebuild, no cascade
    op.drop_column('identities', 'id')
