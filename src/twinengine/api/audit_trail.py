"""The audit record of one write request, and how it rides in the request's own transaction.

A write that succeeds has its audit row added to the unit of work that holds the write, just before that
commits (``commits_on_its_thread``): one durable commit acknowledges both, and neither exists without the
other. Anything else (a refused or failed request, an endpoint that committed on its own) is recorded by
``AuditMiddleware`` in a transaction of its own, as before.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.types import Scope

from twinengine.auth import audit
from twinengine.auth.principal import Principal

__all__ = ["AUDITED_KEY", "PENDING_KEY", "PRINCIPAL_SCOPE_KEY", "WRITE_METHODS", "record_request",
           "record_with_commit", "request_event"]

log = logging.getLogger("twinengine.audit")

PRINCIPAL_SCOPE_KEY = "twinengine.principal"
AUDITED_KEY = "twinengine.audited"  # in the request scope: the status already recorded with the write
PENDING_KEY = "twinengine.audit"  # in a write request's session.info: the scope to record on commit
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _operation(scope: Scope) -> str:
    route = scope.get("route")
    if isinstance(route, APIRoute):
        return route.operation_id or route.unique_id
    return f"{scope['method']} {scope['path']}"


def record_request(session: Session, scope: Scope, status: int) -> None:
    audit.record_all(session, [request_event(scope, status)])


def request_event(scope: Scope, status: int) -> dict[str, Any]:
    """The audit row of the request of ``scope`` that answered ``status`` (``audit.record_all`` adds it)."""
    principal: Principal | None = scope.get(PRINCIPAL_SCOPE_KEY)
    return audit.event(
        actor=principal.name if principal else "anonymous",
        role=principal.role.value if principal else None,
        action=_operation(scope),
        target=f"{scope['method']} {scope['path']}",
        outcome=audit.outcome_of(status),
        status=status,
        detail={"client": (scope.get("client") or ("", 0))[0]},
    )


def _status(scope: Scope, answer: Any) -> int:
    if isinstance(answer, Response):
        return answer.status_code
    route = scope.get("route")
    return (route.status_code if isinstance(route, APIRoute) else None) or 200


def record_with_commit(session: Session, answer: Any) -> None:
    """Commit a write request's session with its audit row in it, when the request asked for one."""
    scope: Scope | None = session.info.pop(PENDING_KEY, None)
    if scope is None:
        session.commit()
        return
    status = _status(scope, answer)
    record_request(session, scope, status)
    session.commit()
    scope[AUDITED_KEY] = status
