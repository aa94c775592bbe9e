"""HTTP routes of the auth package: who am I, tokens (admins), the audit log (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query, status

from twinengine.api.deps import PrincipalDep, RuntimeDep, SessionDep
from twinengine.api.routing import api_router
from twinengine.auth import audit, service
from twinengine.auth.schemas import AuditEventRead, AuditPage, Me, TokenCreate, TokenIssued, TokenRead
from twinengine.errors import ValidationFailed
from twinengine.timeutil import parse_duration
from twinengine.types import INT32_MAX

__all__ = ["router"]

router = api_router()


@router.get("/me", tags=["auth"], name="me", summary="The caller's identity and role")
def me(principal: PrincipalDep) -> Me:
    return Me(name=principal.name, role=principal.role, issuer=principal.issuer)


@router.post("/tokens", tags=["tokens"], name="create", status_code=status.HTTP_201_CREATED,
             summary="Issue a token (admins); creates the identity on first use")
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


@router.get("/tokens", tags=["tokens"], name="list", summary="Tokens issued by this engine (admins)")
def list_tokens(session: SessionDep, principal: PrincipalDep,
                identity: Annotated[str | None, Query(max_length=64)] = None) -> list[TokenRead]:
    return [TokenRead.model_validate(t) for t in service.list_tokens(session, principal=principal,
                                                                     identity=identity)]


@router.delete("/tokens/{jti}", tags=["tokens"], name="revoke", summary="Revoke a token (admins)")
def revoke_token(jti: Annotated[str, Path(max_length=64)], session: SessionDep, principal: PrincipalDep,
                 runtime: RuntimeDep) -> TokenRead:
    revoked = TokenRead.model_validate(service.revoke_token(session, principal=principal, jti=jti))
    session.commit()  # then no request in this process can find the token valid again
    runtime.verdicts.forget(jti)
    return revoked


@router.get("/audit", tags=["audit"], name="list", summary="The audit log, newest first (admins)")
def list_audit(
    session: SessionDep,
    principal: PrincipalDep,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=80, description="Prefix of the operation id")] = None,
    outcome: Annotated[str | None, Query(pattern="^(success|denied|rejected|failed)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> AuditPage:
    rows, total = audit.list_events(session, principal=principal, actor=actor, action=action, outcome=outcome,
                                    since=since, until=until, limit=limit, offset=offset)
    return AuditPage(items=[AuditEventRead.model_validate(r) for r in rows], total=total)
