"""How every package builds its router: full path prefix, ``{tag}-{name}`` operation ids, and units of work
that end on the thread that ran the endpoint.

The route object a request is matched to is the package's own, so it must carry the final path (for
metrics labels) and the final operation id (for the audit log and generated clients) itself.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from twinengine.api.audit_trail import record_with_commit

__all__ = ["API_PREFIX", "Router", "api_router", "commits_on_its_thread", "operation_id"]

API_PREFIX = "/api/v1"


def operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "engine"
    return f"{tag}-{route.name}"


def api_router(path: str = "", *, tag: str | None = None, versioned: bool = True) -> APIRouter:
    """A router for ``/api/v1{path}`` (or ``{path}`` when not versioned) whose routes are tagged ``tag``."""
    prefix = (API_PREFIX if versioned else "") + path
    return Router(prefix=prefix, tags=[tag] if tag else [], generate_unique_id_function=operation_id)


def commits_on_its_thread(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a plain (sync) endpoint so that the request's session commits on the thread that ran it.

    FastAPI validates a sync endpoint's answer on another pool thread and runs the session dependency's
    exit later still. A transaction left open until then would hold SQLite's write lock (or a PostgreSQL
    row lock) while waiting for a free pool thread, and the pool's threads may all be requests waiting for
    that lock. Committed here, no transaction is open while a request waits for a thread. A write
    request's audit row commits in the same transaction (``audit_trail``)."""
    if not inspect.isfunction(endpoint) or inspect.iscoroutinefunction(endpoint) \
            or inspect.isgeneratorfunction(endpoint) or inspect.isasyncgenfunction(endpoint):
        return endpoint

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        answer = endpoint(*args, **kwargs)
        for value in kwargs.values():
            if isinstance(value, Session) and value.in_transaction():
                record_with_commit(value, answer)
        return answer

    return run


class Router(APIRouter):
    """An ``APIRouter`` whose sync endpoints commit the request's session on their own thread."""

    def add_api_route(self, path: str, endpoint: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().add_api_route(path, commits_on_its_thread(endpoint), *args, **kwargs)
