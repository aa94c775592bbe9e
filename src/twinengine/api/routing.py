"""How every package builds its router: full path prefix, ``{tag}-{name}`` operation ids, and units of work
that end on the thread that ran the endpoint.

The route object a request is matched to is the package's own, so it must carry the final path (for
metrics labels) and the final operation id (for the audit log and generated clients) itself.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import APIRouter, BackgroundTasks
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette._utils import get_route_path
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from twinengine.api.audit_trail import record_with_commit
from twinengine.api.route_actions import with_declaration
from twinengine.store.conflicts import store_refusal

__all__ = ["API_PREFIX", "Router", "api_router", "commits_on_its_thread", "long_running", "operation_id"]

API_PREFIX = "/api/v1"
_LONG = "__twinengine_long_running__"
F = typing.TypeVar("F", bound=Callable[..., Any])


def long_running(endpoint: F) -> F:
    """Mark a sync endpoint whose work may take long (it executes a workflow run, or publishes an app and
    builds its environment): it runs on the runtime's long-request threads (``long_request_threads``), never
    on a request thread, so that a few long requests cannot leave the short ones without a thread. Its
    session still commits on the thread that ran it. The endpoint must take ``runtime: RuntimeDep``."""
    setattr(endpoint, _LONG, True)
    return endpoint


def _on_long_request_threads(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if "runtime" not in inspect.signature(endpoint).parameters:
        raise TypeError(f"{endpoint.__name__} is long_running but takes no runtime")

    @functools.wraps(endpoint)
    async def run(*args: Any, **kwargs: Any) -> Any:
        limiter = kwargs["runtime"].long_requests
        return await anyio.to_thread.run_sync(functools.partial(endpoint, *args, **kwargs), limiter=limiter)

    return run


def operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "engine"
    return f"{tag}-{route.name}"


def api_router(path: str = "", *, tag: str | None = None, versioned: bool = True) -> APIRouter:
    """A router for ``/api/v1{path}`` (or ``{path}`` when not versioned) whose routes are tagged ``tag``; each
    route declares what it enforces (``api.route_actions``)."""
    prefix = (API_PREFIX if versioned else "") + path
    return Router(prefix=prefix, tags=[tag] if tag else [], generate_unique_id_function=operation_id)


def commits_on_its_thread(endpoint: Callable[..., Any], *, answers: tuple[type[BaseModel], int] | None = None
                          ) -> Callable[..., Any]:
    """Wrap a plain (sync) endpoint so that the request's session commits on the thread that ran it.

    FastAPI validates a sync endpoint's answer on another pool thread and runs the session dependency's
    exit later still. A transaction left open until then would hold SQLite's write lock (or a PostgreSQL
    row lock) while waiting for a free pool thread, and the pool's threads may all be requests waiting for
    that lock. Committed here (or rolled back, when the endpoint or the commit raised), no transaction is
    open while a request waits for a thread; a unique key or reference the store refused is a 409
    (``store.conflicts``). A write
    request's audit row commits in the same transaction (``audit_trail``).

    ``answers`` (the model the endpoint declares it returns, and the route's status): an answer of exactly
    that model is also serialised here, as FastAPI would (by alias, nothing excluded), so the request does
    not wait for a second pool thread to validate what the model's own constructor already did."""
    if not inspect.isfunction(endpoint) or inspect.iscoroutinefunction(endpoint) \
            or inspect.isgeneratorfunction(endpoint) or inspect.isasyncgenfunction(endpoint):
        return endpoint

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        sessions = [value for value in kwargs.values() if isinstance(value, Session)]
        try:
            answer = endpoint(*args, **kwargs)
            for session in sessions:
                if session.in_transaction():
                    record_with_commit(session, answer)
        except BaseException as error:
            # Rolled back here too: a failed request's transaction may hold the locks the pool's other
            # threads wait for, so it must not wait for one of them to be let go.
            for session in sessions:
                session.rollback()
            conflict = store_refusal(error)
            if conflict is not None:
                raise conflict from error
            raise
        if answers is not None and type(answer) is answers[0]:
            return Response(answer.model_dump_json(by_alias=True), status_code=answers[1],
                            media_type="application/json")
        return answer

    return run


def _plain_model_answer(endpoint: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[type[BaseModel], int] | None:
    """The model a sync endpoint returns and its status, when FastAPI's handling of it would be plain JSON:
    no response class or model options of the route's own, no ``Response`` or background tasks parameter
    (their headers and tasks ride on the response FastAPI builds)."""
    plain = {"response_model_include": None, "response_model_exclude": None, "response_model_by_alias": True,
             "response_model_exclude_unset": False, "response_model_exclude_defaults": False,
             "response_model_exclude_none": False}
    if any(kwargs.get(k, v) != v for k, v in plain.items()) or not inspect.isfunction(endpoint) or any(
            not isinstance(kwargs.get(k), DefaultPlaceholder | None) for k in ("response_model", "response_class")):
        return None
    try:
        hints = typing.get_type_hints(endpoint)
    except Exception:  # an annotation that does not resolve here: leave the answer to FastAPI
        return None
    model = hints.pop("return", None)
    if any(isinstance(h, type) and issubclass(h, Response | BackgroundTasks) for h in hints.values()):
        return None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    status = kwargs.get("status_code")
    return model, int(status) if isinstance(status, int) else 200


class Router(APIRouter):
    """An ``APIRouter`` whose sync endpoints commit the request's session on their own thread."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """No match, at once, for a path outside the router's prefix: FastAPI tries every route of every
        included router in turn (a regular expression each), so a request to the twenty-fifth router
        would otherwise be tried against all the routes before it."""
        if self.prefix and not get_route_path(scope).startswith(self.prefix):
            return Match.NONE, {}
        return super().matches(scope)

    def add_api_route(self, path: str, endpoint: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        kwargs["openapi_extra"] = with_declaration(endpoint, kwargs.get("openapi_extra"))  # api.route_actions
        answers = _plain_model_answer(endpoint, kwargs) if not args else None
        committing = commits_on_its_thread(endpoint, answers=answers)
        if getattr(endpoint, _LONG, False):
            committing = _on_long_request_threads(committing)
        super().add_api_route(path, committing, *args, **kwargs)
