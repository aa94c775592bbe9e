"""Dependencies every router shares, as ``Annotated`` aliases: the runtime, a DB session, the caller."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from twinengine.api.audit_trail import PENDING_KEY, PRINCIPAL_SCOPE_KEY, WRITE_METHODS
from twinengine.api.cookies import check_csrf, request_token
from twinengine.auth.issuer import verify_bearer
from twinengine.auth.policy import require
from twinengine.auth.principal import Principal
from twinengine.runtime import Runtime

__all__ = ["PRINCIPAL_SCOPE_KEY", "TOKEN_REQUIRED", "PrincipalDep", "ReadSessionDep", "RuntimeDep", "SessionDep",
           "authorized", "principal_of", "requires_token"]

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
F = TypeVar("F", bound=Callable[..., Any])

TOKEN_REQUIRED: set[Callable[..., Any]] = set()
"""Dependencies that refuse a request without a valid token: the OpenAPI description (``api.description``)
marks the routes that use one as needing a bearer token, and the others as public."""


def requires_token(dependency: F) -> F:
    """Register ``dependency`` as one that answers 401 without a valid token."""
    TOKEN_REQUIRED.add(dependency)
    return dependency


async def get_runtime(request: Request) -> Runtime:
    """Async because it never blocks: a sync dependency would cost every request a thread hop."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(request: Request, runtime: RuntimeDep) -> AsyncIterator[Session]:
    """One unit of work per request, committed before the response is sent (acknowledged = durable).

    The endpoint's own thread commits it (``api.routing``); opening it does no I/O, so this runs on the event
    loop and a request costs no thread hop to enter or leave it. Sync endpoints commit or roll back on their
    own thread (``api.routing``); a unit of work another endpoint left open is ended on a worker thread: the
    loop never waits on the store."""
    db = runtime.db
    session = db.open(readonly=request.method in _READ_METHODS)
    if request.method in WRITE_METHODS:
        session.info[PENDING_KEY] = request.scope  # its audit row commits with the write (audit_trail)
    try:
        yield session
    except BaseException:
        if session.in_transaction():  # an endpoint that does not roll back on its own thread
            await run_in_threadpool(functools.partial(db.close, session, commit=False))
        else:
            session.close()
        raise
    if session.in_transaction():  # left open by an endpoint that does not commit on its thread
        await run_in_threadpool(functools.partial(db.close, session, commit=True))
    else:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_read_session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    """A read-only unit of work whatever the method, for a route that only reads but takes its question in a
    body (a search POSTed): on SQLite it takes no write lock, so what the route waits on meanwhile (files it
    opens, a collection's replicas) holds no writer of the engine (``store.guard``). Its audit row, a write
    method's, is written apart (``AuditMiddleware``)."""
    db = runtime.db
    session = db.open(readonly=True)
    try:
        yield session
    finally:
        if session.in_transaction():  # an endpoint that does not end it on its own thread
            await run_in_threadpool(functools.partial(db.close, session, commit=False))
        else:
            session.close()


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="A token from `twin token create` or an OIDC issuer.")


@requires_token
async def get_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from the bearer token or else the portal's session cookie (writes with the cookie need
    its CSRF token: ``api.cookies``). A token verified moments ago (``settings.token_recheck``) is taken on
    the event loop; otherwise it is verified on a worker thread in a short read-only transaction of its
    own, so the request's unit of work starts at the service's first query and a long upload never holds
    SQLite's write lock."""
    principal = await principal_of(runtime, request_token(request, credentials))
    request.scope[PRINCIPAL_SCOPE_KEY] = principal  # the audit middleware reads it (a refused write too)
    check_csrf(request, runtime, principal)
    return principal


async def principal_of(runtime: Runtime, token: str | None) -> Principal:
    """Who ``token`` stands for: a verdict of the last ``settings.token_recheck``, taken on the event loop, or
    a verification on a worker thread (raises ``TokenInvalid`` for a revoked or expired token)."""
    principal = runtime.verdicts.get(token) if token else None
    if principal is None:
        principal = await run_in_threadpool(_verify, runtime, token)
    return principal


def _verify(runtime: Runtime, token: str | None) -> Principal:
    generation = runtime.verdicts.generation()  # before the read: a revocation committed after it is not cached over
    with runtime.db.session(readonly=True) as session:
        principal = verify_bearer(token, session=session, verifiers=runtime.verifiers)
    if token:
        runtime.verdicts.put(token, principal, generation)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def authorized(action: str) -> Callable[[Principal], Principal]:
    """A dependency refusing callers who may not perform ``action`` at all (a rule that needs no resource).

    FastAPI runs dependencies before it validates parameters and the body, so a caller without the right
    hears 403 rather than learning from a 422 what a valid request would look like. The service checks again.
    """
    def check(principal: PrincipalDep) -> Principal:
        require(principal, action)
        return principal

    return check
