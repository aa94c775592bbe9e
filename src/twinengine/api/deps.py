"""Dependencies every router shares, as ``Annotated`` aliases: the runtime, a DB session, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from twinengine.auth.issuer import verify_bearer
from twinengine.auth.principal import Principal
from twinengine.runtime import Runtime

__all__ = ["PRINCIPAL_SCOPE_KEY", "PrincipalDep", "RuntimeDep", "SessionDep"]

PRINCIPAL_SCOPE_KEY = "twinengine.principal"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_runtime(request: Request) -> Runtime:
    """Async because it never blocks: a sync dependency would cost every request a thread hop."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(request: Request, runtime: RuntimeDep) -> Iterator[Session]:
    """One unit of work per request, committed before the response is sent (acknowledged = durable)."""
    with runtime.db.session(readonly=request.method in _READ_METHODS) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="A token from `twin token create` or an OIDC issuer.")


def get_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Verify the token in a short read-only transaction of its own: the request's unit of work then
    starts at the service's first query, so a long body upload never holds SQLite's write lock."""
    token = credentials.credentials if credentials is not None else None
    with runtime.db.session(readonly=True) as session:
        principal = verify_bearer(token, session=session, verifiers=runtime.verifiers)
    request.scope[PRINCIPAL_SCOPE_KEY] = principal  # the audit middleware reads it
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
