"""A write request's unit of work handed to the store's one writer (``store.writer``), its audit row with it.

An async endpoint awaits the writer's commit without holding a thread: on SQLite the writes of concurrent
requests share one transaction and one durable commit, after which each request answers (acknowledged =
durable). A store without a writer (PostgreSQL, whose writers of different rows proceed side by side) runs
the unit of work on a worker thread and commits it there, as a sync endpoint's (``api.routing``). Either way
a successful write's audit row is in its transaction, and a refused one is recorded by ``AuditMiddleware``,
as for every other route. The audit rows of writes applied together are one statement, run straight on the
group's SQLite connection (``store.direct``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from twinengine.api.audit_trail import AUDITED_KEY, record_request, request_event
from twinengine.auth.models import AuditEvent
from twinengine.runtime import Runtime
from twinengine.store.conflicts import store_refusal
from twinengine.store.direct import Direct

__all__ = ["write_through_store"]

W = TypeVar("W")  # what a request asks to write
T = TypeVar("T")
_AUDIT_ROWS = Direct(insert(cast(Table, AuditEvent.__table__)),  # the rows of ``audit.event``
                     keys=("at", "actor", "role", "action", "target", "outcome", "status", "detail"))


@dataclass(frozen=True, slots=True)
class _Request(Generic[W]):
    scope: Scope
    status: int
    item: W


@dataclass(frozen=True, slots=True)
class _Audited(Generic[W, T]):
    """``apply`` on one item, or on many at once (``together``), each successful item's audit row with it."""

    apply: Callable[[Session, W], T]
    apply_together: Callable[[Session, Sequence[W]], Sequence[Any]] | None

    def one(self, request: _Request[W], session: Session) -> T:
        answer = self.apply(session, request.item)
        record_request(session, request.scope, request.status)
        return answer

    def together(self, session: Session, requests: list[_Request[W]]) -> Sequence[Any]:
        assert self.apply_together is not None
        outcomes = self.apply_together(session, [request.item for request in requests])
        _AUDIT_ROWS.many(session, [request_event(request.scope, request.status)
                                   for request, outcome in zip(requests, outcomes, strict=True)
                                   if not isinstance(outcome, Exception)])
        return outcomes


async def write_through_store(runtime: Runtime, scope: Scope, item: W, apply: Callable[[Session, W], T], *,
                              together: Callable[[Session, Sequence[W]], Sequence[Any]] | None = None,
                              status: int = 200) -> T:
    """What ``apply(session, item)`` returned, once it and the request's audit row (``status``) are committed;
    what refused it otherwise (a unique key or reference the store refused: 409, ``store.conflicts``).
    ``together`` applies the items of concurrent requests at once (``store.writer.Together``)."""
    request = _Request(scope, status, item)
    audited: _Audited[W, T] = _Audited(apply, together)
    writer = runtime.db.writer
    try:
        if writer is None:
            answer = await run_in_threadpool(_alone, runtime, audited, request)
        else:
            future = writer.submit(lambda session: audited.one(request, session),
                                   together=audited.together if together is not None else None, item=request)
            answer = await asyncio.wrap_future(future)
    except Exception as error:
        conflict = store_refusal(error)
        if conflict is not None:
            raise conflict from error
        raise
    scope[AUDITED_KEY] = status
    return answer


def _alone(runtime: Runtime, audited: _Audited[W, T], request: _Request[W]) -> T:
    with runtime.db.session() as session:
        return audited.one(request, session)
