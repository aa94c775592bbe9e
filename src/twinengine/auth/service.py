"""Identities and tokens: bootstrap the first admin, issue, list and revoke tokens, disable and delete
identities."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from twinengine.auth import audit
from twinengine.auth.issuer import BuiltinIssuer, SignedToken
from twinengine.auth.lifetimes import end_of, provider_jti
from twinengine.auth.models import ApiToken, Identity
from twinengine.auth.policy import require
from twinengine.auth.principal import SYSTEM, Principal, Role, reserved
from twinengine.errors import IdentityInUse, IdentityNotFound, InvalidInput, NotFound, ValidationFailed
from twinengine.store.base import upsert, utcnow

__all__ = [
    "ADMIN_TOKEN_FILE",
    "bootstrap_admin",
    "delete_identity",
    "ensure_identity",
    "get_identity",
    "issue_token",
    "list_identities",
    "list_tokens",
    "refuse_reserved",
    "revoke_token",
    "set_disabled",
]

ADMIN_TOKEN_FILE = "admin.token"  # where engines before 0.x kept the first token; removed on start


def get_identity(session: Session, name: str) -> Identity:
    identity = session.get(Identity, name)
    if identity is None:
        raise IdentityNotFound(f"no identity named {name!r}")
    return identity


def ensure_identity(session: Session, name: str, *, created_by: str) -> Identity:
    """The identity ``name``, created on its first use. Two first uses at once (two tokens for a new name,
    a new OIDC user's first two twins) both find it: the insert does nothing when the other one's committed
    first, where a plain insert would collide on PostgreSQL."""
    identity = session.get(Identity, name)
    if identity is None:
        statement = upsert(session.get_bind().dialect.name, Identity).values(name=name, created_by=created_by)
        session.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
        identity = session.get_one(Identity, name)
    return identity


def refuse_reserved(name: str, *, loc: str = "name") -> None:
    """Refuse a name the engine keeps for itself (``auth.principal.RESERVED_NAMES``) as an identity's name."""
    if reserved(name):
        raise ValidationFailed.one(loc, f"{name!r} is reserved: the engine records its own work under it; "
                                        "choose another identity name")


def issue_token(
    session: Session,
    issuer: BuiltinIssuer,
    *,
    principal: Principal,
    name: str,
    role: Role,
    ttl: timedelta | None,
    note: str | None = None,
    not_after: datetime | None = None,
    made_from: str | None = None,
) -> SignedToken:
    """Sign a token for ``name`` in ``role`` (creating the identity on first use) and record it; it expires
    after ``ttl`` and not after ``not_after``; ``made_from``: the OpenID provider's token (its ``jti``) it was
    made from, with which it ends. One an admin makes for themselves is made from their own token and ends no
    later than it (``auth.lifetimes``); one for another identity is an admin's act of its own."""
    require(principal, "token.create", target=f"identity {name}")
    refuse_reserved(name)
    if name == principal.name:
        not_after = end_of(principal, not_after)
        made_from = made_from or provider_jti(principal, issuer.issuer)
    identity = ensure_identity(session, name, created_by=principal.name)
    signed = issuer.sign(name, role, ttl, not_after=not_after)
    session.add(ApiToken(jti=signed.jti, identity=name, identity_id=identity.id, role=role.value,
                         issued_at=signed.issued_at, expires_at=signed.expires_at, note=note,
                         provider_jti=made_from))
    session.flush()
    return signed


def list_identities(session: Session, *, principal: Principal) -> list[tuple[Identity, int, list[str]]]:
    """Every identity with the number of its tokens still valid and their roles (admins)."""
    require(principal, "identity.list")
    now = utcnow()
    valid = (select(ApiToken.identity, ApiToken.role, func.count().label("n"))
             .where(ApiToken.revoked_at.is_(None), (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now))
             .group_by(ApiToken.identity, ApiToken.role))
    counts: dict[str, tuple[int, list[str]]] = {}
    for name, role, n in session.execute(valid):
        total, roles = counts.get(name, (0, []))
        counts[name] = (total + int(n), sorted({*roles, role}))
    return [(row, *counts.get(row.name, (0, []))) for row in session.scalars(select(Identity).order_by(Identity.name))]


def list_tokens(session: Session, *, principal: Principal, identity: str | None = None) -> list[ApiToken]:
    require(principal, "token.read")
    query = select(ApiToken).order_by(ApiToken.issued_at)
    if identity:
        query = query.where(ApiToken.identity == identity)
    return list(session.scalars(query))


def revoke_token(session: Session, *, principal: Principal, jti: str) -> ApiToken:
    require(principal, "token.revoke", target=f"token {jti}")
    record = session.get(ApiToken, jti)
    if record is None:
        raise NotFound(f"no token with id {jti!r}")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record


def _managed(session: Session, principal: Principal, name: str) -> Identity:
    require(principal, "identity.manage", target=f"identity {name}")
    if name == principal.name:
        raise InvalidInput(f"{name!r} is the identity you act as: another admin may disable or delete it")
    return get_identity(session, name)


def set_disabled(session: Session, *, principal: Principal, name: str, disabled: bool) -> Identity:
    """Disable (or enable again) an identity: its tokens and portal sessions stop working at once, and
    start again when it is enabled (admins). An admin's disable is the admin's: a provider that vouches for the
    person does not lift it (``auth.liveness``); enabling lifts a provider's hold too."""
    identity = _managed(session, principal, name)
    if disabled != identity.disabled or (disabled and identity.disabled_by != principal.name):
        identity.disabled = disabled
        identity.disabled_by, identity.disabled_at = (principal.name, utcnow()) if disabled else (None, None)
    session.flush()
    return identity


def delete_identity(session: Session, *, principal: Principal, name: str) -> list[str]:
    """Delete an identity with its tokens, sessions and grants (admins); returns the ids of the tokens it had.

    Its id is never reused: a new identity of the same name is another one, to which nothing of this one
    applies. An identity that still owns twins is kept (409): delete them first, or disable it."""
    identity = _managed(session, principal, name)
    jtis = list(session.scalars(select(ApiToken.jti).where(ApiToken.identity == name)))
    try:
        with session.begin_nested():
            session.execute(delete(ApiToken).where(ApiToken.identity == name))
            session.delete(identity)
            session.flush()
    except IntegrityError:
        raise IdentityInUse(f"identity {name!r} still owns twins: delete them first, or disable the identity "
                            "instead") from None
    return jtis


def bootstrap_admin(session: Session, issuer: BuiltinIssuer, *, data_dir: Path,
                    ttl: timedelta | None) -> str | None:
    """On an engine's first start, create the ``admin`` identity and return its token (else None).

    The token is printed once by whoever started the engine and kept nowhere: the store holds its id only,
    and ``twin token create --data-dir`` (on the engine's machine) issues another. A token file that an
    older engine left in the data dir is removed, so no code that can read files finds one there.
    """
    leftover = data_dir / ADMIN_TOKEN_FILE
    if leftover.exists():
        leftover.unlink()
    if session.scalar(select(ApiToken.jti).where(ApiToken.role == Role.ADMIN.value).limit(1)) is not None:
        return None
    signed = issue_token(session, issuer, principal=SYSTEM, name="admin", role=Role.ADMIN, ttl=ttl,
                         note="created on first start")
    audit.record(session, actor=SYSTEM.name, role=SYSTEM.role.value, action="token-create",
                 target="identity admin", outcome="success", detail={"jti": signed.jti, "bootstrap": True})
    return signed.token
