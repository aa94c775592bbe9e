"""auth: a scoped token's twins by id, the provider token a token was made from, and who disabled an identity

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-28 10:00:00.000000

A token limited to some twins recorded their names only, so everything of a twin that names it by id (a run, a
subscription, a delivery) could not be judged against the limit, and a twin made later under one of the names
was reached. Tokens gain ``twin_ids`` (the twins' ids when the token was made; existing tokens get the ids of
the twins that carry those names now), and ``provider_jti``, the OpenID provider's token one was made from,
so what was made from a token the provider ended ends with it. Identities gain ``disabled_by`` and ``disabled_at``: a hold that an
identity's OpenID provider caused ends itself once the provider vouches for the person again, an admin's does
not; identities disabled before stay disabled by nobody in particular (an admin enables them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import twinengine.store.base

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    # Plain ADD COLUMN (no table rebuild): rebuilding identities would cascade to the rows that refer to it.
    op.add_column('api_tokens', sa.Column('twin_ids', json, nullable=True))
    op.add_column('api_tokens', sa.Column('provider_jti', sa.String(length=255), nullable=True))
    op.create_index(op.f('ix_api_tokens_provider_jti'), 'api_tokens', ['provider_jti'], unique=False)
    op.add_column('identities', sa.Column('disabled_by', sa.String(length=80), nullable=True))
    op.add_column('identities', sa.Column('disabled_at', twinengine.store.base.UTCDateTime(timezone=True),
                                          nullable=True))
    conn = op.get_bind()
    tokens = sa.table('api_tokens', sa.column('jti', sa.String), sa.column('twins', sa.JSON),
                      sa.column('twin_ids', sa.JSON))
    twins = sa.table('twins', sa.column('id', sa.String), sa.column('name', sa.String))
    for jti, names in conn.execute(sa.select(tokens.c.jti, tokens.c.twins).where(tokens.c.twins.is_not(None))):
        if not isinstance(names, list):  # a JSON null: a token not limited to twins
            continue
        wanted = [str(n) for n in names]
        ids = sorted(conn.scalars(sa.select(twins.c.id).where(sa.or_(twins.c.name.in_(wanted),
                                                                      twins.c.id.in_(wanted)))))
        conn.execute(tokens.update().where(tokens.c.jti == jti).values(twin_ids=ids))


def downgrade() -> None:
    op.drop_column('identities', 'disabled_at')  # ALTER TABLE DROP COLUMN: no rebuild, no cascade
    op.drop_column('identities', 'disabled_by')
    op.drop_index(op.f('ix_api_tokens_provider_jti'), table_name='api_tokens')
    op.drop_column('api_tokens', 'provider_jti')
    op.drop_column('api_tokens', 'twin_ids')
