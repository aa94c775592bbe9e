"""HTTP routes of the auth package: who am I, tokens (admins), the audit log (admins)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from twinengine.api.cookies import CREDENTIAL_SCOPE_KEY, SESSION_COOKIE
from twinengine.api.deps import PRINCIPAL_SCOPE_KEY, PrincipalDep, RuntimeDep, SessionDep, authorized
from twinengine.api.route_actions import acts, public, signed_in
from twinengine.api.routing import api_router
from twinengine.auth import audit, service, sessions
from twinengine.auth.issuer import verify_bearer
from twinengine.auth.schemas import (
    AuditEventRead,
    AuditPage,
    IdentityDeleted,
    IdentityRead,
    IdentityUpdate,
    Me,
    SessionCreate,
    SessionRead,
    TokenCreate,
    TokenIssued,
    TokenRead,
)
from twinengine.errors import ValidationFailed
from twinengine.store.base import utcnow
from twinengine.timeutil import Instant, parse_duration
from twinengine.types import INT32_MAX

__all__ = ["router"]

router = api_router()


@router.get("/me", tags=["auth"], name="me", summary="The caller's identity and role")
@signed_in
def me(principal: PrincipalDep) -> Me:
    return Me(name=principal.name, role=principal.role, issuer=principal.issuer, groups=sorted(principal.groups),
              scopes=sorted(principal.scopes) if principal.scopes is not None else None,
              twins=sorted(principal.twins) if principal.twins is not None else None)


@router.post("/tokens", tags=["tokens"], name="create", status_code=status.HTTP_201_CREATED,
             summary="Issue a token (admins); creates the identity on first use",
             dependencies=[Depends(authorized("token.create"))])
@acts("token.create")
def create_token(body: TokenCreate, session: SessionDep, runtime: RuntimeDep,
                 principal: PrincipalDep) -> TokenIssued:
    ttl = runtime.settings.token_ttl
    if body.expires_in is not None:
        try:
            ttl = parse_duration(body.expires_in)  # type: ignore[assignment]
        except ValueError as exc:
            raise ValidationFailed.one("expires_in", str(exc)) from None
    signed = service.issue_token(session, runtime.issuer, principal=principal, name=body.name, role=body.role,
                                 ttl=ttl, note=body.note)
    return TokenIssued(token=signed.token, jti=signed.jti, name=signed.name, role=signed.role,
                       expires_at=signed.expires_at)


@router.get("/tokens", tags=["tokens"], name="list", summary="Tokens issued by this engine (admins)",
            dependencies=[Depends(authorized("token.read"))])
@acts("token.read")
def list_tokens(session: SessionDep, principal: PrincipalDep,
                identity: Annotated[str | None, Query(max_length=64)] = None) -> list[TokenRead]:
    return [TokenRead.model_validate(t) for t in service.list_tokens(session, principal=principal,
                                                                     identity=identity)]


@router.delete("/tokens/{jti}", tags=["tokens"], name="revoke", summary="Revoke a token (admins)",
               dependencies=[Depends(authorized("token.revoke"))])
@acts("token.revoke")
def revoke_token(jti: Annotated[str, Path(max_length=64)], session: SessionDep, principal: PrincipalDep,
                 runtime: RuntimeDep) -> TokenRead:
    revoked = TokenRead.model_validate(service.revoke_token(session, principal=principal, jti=jti))
    session.commit()  # then no request in this process can find the token valid again
    runtime.verdicts.forget(jti)
    return revoked


@router.get("/audit", tags=["audit"], name="list", summary="The audit log, newest first (admins)",
            dependencies=[Depends(authorized("audit.read"))])
@acts("audit.read")
def list_audit(
    session: SessionDep,
    principal: PrincipalDep,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=80, description="Prefix of the operation id")] = None,
    outcome: Annotated[str | None, Query(pattern="^(success|denied|rejected|failed)$")] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> AuditPage:
    rows, total = audit.list_events(session, principal=principal, actor=actor, action=action, outcome=outcome,
                                    since=since, until=until, limit=limit, offset=offset)
    return AuditPage(items=[AuditEventRead.model_validate(r) for r in rows], total=total)


@router.get("/identities", tags=["identities"], name="list", summary="Identities and their valid tokens (admins)")
@acts("identity.list")
def list_identities(session: SessionDep, principal: PrincipalDep) -> list[IdentityRead]:
    return [IdentityRead(name=row.name, id=row.id, created_at=row.created_at, created_by=row.created_by,
                         disabled=row.disabled, disabled_by=row.disabled_by, valid_tokens=n, roles=roles)
            for row, n, roles in service.list_identities(session, principal=principal)]


IdentityPath = Annotated[str, Path(max_length=64)]


@router.patch("/identities/{name}", tags=["identities"], name="update",
              summary="Disable or enable an identity (admins): its tokens and sessions stop or work again at once",
              dependencies=[Depends(authorized("identity.manage"))])
@acts("identity.manage")
def update_identity(name: IdentityPath, body: IdentityUpdate, session: SessionDep, principal: PrincipalDep,
                    runtime: RuntimeDep) -> IdentityRead:
    row = service.set_disabled(session, principal=principal, name=name, disabled=body.disabled)
    read = next(IdentityRead(name=r.name, id=r.id, created_at=r.created_at, created_by=r.created_by,
                             disabled=r.disabled, disabled_by=r.disabled_by, valid_tokens=n, roles=roles)
                for r, n, roles in service.list_identities(session, principal=principal) if r.name == row.name)
    session.commit()  # then no request in this process finds its tokens valid again
    runtime.verdicts.forget_identity(name)
    return read


@router.delete("/identities/{name}", tags=["identities"], name="delete",
               summary="Delete an identity with its tokens, sessions and grants (admins); its id is never reused",
               dependencies=[Depends(authorized("identity.manage"))],
               responses={409: {"description": "The identity still owns twins"}})
@acts("identity.manage")
def delete_identity(name: IdentityPath, session: SessionDep, principal: PrincipalDep,
                    runtime: RuntimeDep) -> IdentityDeleted:
    identity_id = service.get_identity(session, name).id
    jtis = service.delete_identity(session, principal=principal, name=name)
    session.commit()
    runtime.verdicts.forget_identity(name)
    return IdentityDeleted(name=name, id=identity_id, tokens_deleted=len(jtis))


@router.post("/session", tags=["session"], name="sign_in", status_code=status.HTTP_201_CREATED,
             summary="Sign in to the portal: exchanges a token for an httpOnly session cookie",
             responses={401: {"description": "The token is not valid"}})
@public
async def sign_in(body: SessionCreate, request: Request, response: Response, runtime: RuntimeDep) -> SessionRead:
    """The token is verified and dropped; the cookie holds a new short-lived session token (SameSite=Strict).
    Writes with the cookie must send ``csrf_token`` as ``X-CSRF-Token``."""

    def open_() -> tuple[SessionRead, str]:
        # Verified before the write, in a read of its own: a person's first sign-in is recorded in transactions
        # of its own (auth.external), never inside this one (store.guard).
        with runtime.db.session(readonly=True) as session:
            principal = verify_bearer(body.token, session=session, verifiers=runtime.verifiers)
        request.scope[PRINCIPAL_SCOPE_KEY] = principal  # the audit records who signed in
        with runtime.db.session() as session:
            signed = sessions.open_session(session, runtime.issuer, principal=principal,
                                           ttl=runtime.settings.session_ttl)
        read = SessionRead(name=signed.name, role=signed.role, issuer=runtime.issuer.issuer,
                           csrf_token=sessions.csrf_token(runtime.issuer, signed.jti), expires_at=signed.expires_at)
        return read, signed.token

    read, token = await run_in_threadpool(open_)
    max_age = int(runtime.settings.session_ttl.total_seconds())
    if read.expires_at is not None:  # a session ends no later than the token it was opened with
        max_age = max(1, min(max_age, math.ceil((read.expires_at - utcnow()).total_seconds())))
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return read


@router.get("/session", tags=["session"], name="get", summary="The signed-in caller and the session's CSRF token")
@signed_in
def get_session(request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> SessionRead:
    from_cookie = request.scope.get(CREDENTIAL_SCOPE_KEY) == "cookie" and principal.token_id is not None
    csrf = sessions.csrf_token(runtime.issuer, principal.token_id) if from_cookie and principal.token_id else None
    return SessionRead(name=principal.name, role=principal.role, issuer=principal.issuer, csrf_token=csrf)


@router.delete("/session", tags=["session"], name="sign_out", status_code=status.HTTP_204_NO_CONTENT,
               summary="Sign out: revokes the session token and clears the cookie")
@signed_in
def sign_out(request: Request, session: SessionDep, runtime: RuntimeDep, principal: PrincipalDep) -> Response:
    closed = sessions.close_session(session, principal=principal)
    session.commit()
    if closed and principal.token_id:
        runtime.verdicts.forget(principal.token_id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
