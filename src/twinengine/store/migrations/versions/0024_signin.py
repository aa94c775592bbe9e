"""auth: identities from OpenID providers are keyed by issuer and subject, with a display name and e-mail

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-25 19:00:00.000000

An external identity was named by its ``sub`` claim alone, so the same subject at two providers was one
identity. It is now found by (issuer, subject), unique together; its name is made once from the provider id and
the subject, and the claims people read (display name, e-mail) are kept up to date on each sign-in. Identities
made by the engine's own issuer have neither column set.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import twinengine.store.base

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): rebuilding identities would cascade to the rows that refer to it.
    op.add_column('identities', sa.Column('issuer', sa.String(length=400), nullable=True))
    op.add_column('identities', sa.Column('subject', sa.String(length=255), nullable=True))
    op.add_column('identities', sa.Column('display_name', sa.String(length=200), nullable=True))
    op.add_column('identities', sa.Column('email', sa.String(length=320), nullable=True))
    op.add_column('identities', sa.Column('last_sign_in', twinengine.store.base.UTCDateTime(timezone=True),
                                          nullable=True))
    op.create_index('ux_identities_issuer_subject', 'identities', ['issuer', 'subject'], unique=True)


def downgrade() -> None:
    op.drop_index('ux_identities_issuer_subject', table_name='identities')
    for column in ('last_sign_in', 'email', 'display_name', 'subject', 'issuer'):
        op.drop_column('identities', column)  # ALTER TABLE DROP COLUMN: no rebuild, no cascade
