"""Identities of people who sign in through an OpenID provider: found by issuer and subject (never by a name a
provider sends), created on first sign-in, their display name and e-mail brought up to date on each one, and
the groups the provider asserted recorded as their memberships. A disabled identity is refused at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from twinengine.auth.claims import ExternalPerson, identity_name
from twinengine.auth.groups import groups_of, set_memberships
from twinengine.auth.models import Identity
from twinengine.auth.principal import Principal
from twinengine.errors import TokenInvalid
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["find_identity", "membership_source", "principal_for", "record_sign_in"]


def find_identity(session: Session, *, issuer: str, subject: str) -> Identity | None:
    """The identity a provider's subject signed in as before, if any."""
    return session.execute(select(Identity).where(Identity.issuer == issuer, Identity.subject == subject)) \
        .scalar_one_or_none()


def _create(db: Database, person: ExternalPerson) -> None:
    """Insert the identity in a transaction of its own; a concurrent first sign-in of the same person wins
    harmlessly, and a name taken by someone else gets the digest form (the key is issuer + subject anyway)."""
    insert = postgresql.insert if db.backend == "postgresql" else sqlite.insert
    readable = identity_name(person.provider, person.subject, issuer=person.issuer)
    digested = identity_name(person.provider, person.subject, issuer=person.issuer, digest=True)
    for name in dict.fromkeys((readable, digested)):
        with db.session() as session:
            session.execute(insert(Identity).values(
                name=name, created_at=utcnow(), disabled=False, created_by=f"oidc:{person.provider}",
                issuer=person.issuer, subject=person.subject).on_conflict_do_nothing())
            if find_identity(session, issuer=person.issuer, subject=person.subject) is not None:
                return


def record_sign_in(db: Database, person: ExternalPerson) -> tuple[str, frozenset[str]]:
    """The name of ``person``'s identity, created or updated from the claims (refused when disabled), and the
    groups it is in once the provider's assertion is recorded."""
    with db.session(readonly=True) as session:
        known = find_identity(session, issuer=person.issuer, subject=person.subject)
    if known is None:
        _create(db, person)
    with db.session() as session:
        identity = find_identity(session, issuer=person.issuer, subject=person.subject)
        if identity is None:  # pragma: no cover - both names taken by others, which _create rules out
            raise TokenInvalid(f"no identity could be made for subject {person.subject!r}")
        if identity.disabled:
            raise TokenInvalid(f"identity {identity.name!r} is disabled")
        identity.display_name = person.display_name
        identity.email = person.email
        identity.last_sign_in = utcnow()
        set_memberships(session, identity=identity.name, groups=person.groups, source=membership_source(person))
        return identity.name, groups_of(session, identity.name)


def membership_source(person: ExternalPerson) -> str:
    """The source of the memberships a provider asserts: replaced as a whole on each sign-in through it."""
    return f"provider:{person.provider}"


def principal_for(name: str, person: ExternalPerson, *, groups: frozenset[str], token_id: str | None) -> Principal:
    """The principal of a signed-in person: the role the provider's rules give, the groups it asserted now
    and those the identity is in by other sources (``groups``: an admin's, another provider's)."""
    return Principal(name=name, role=person.role, issuer=person.issuer, token_id=token_id,
                     groups=person.groups | groups)
