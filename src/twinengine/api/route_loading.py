"""The API's route groups imported as requests first need them, and all of them in the background.

An app built with ``lazy_routes`` starts with a stand-in for each group of ``api.route_groups.GROUPS`` in its
router, in the groups' order. A request passes ``RouteGate`` first: if a group that may serve its path
(``RouteGroup.serves``) is not imported yet, the request waits while a worker thread imports it, includes it
and builds its routes; then the group's routes take the stand-in's place, on the event loop, so the router
matches exactly as in an app built with every group. Nothing is refused for coming early, and a path no group
serves (the portal's pages, an unknown path) waits for none. ``/openapi.json`` waits for every group. The
route warm-up (``api.route_warmup``) imports the rest one group at a time, so that ``/health/ready`` can say
when all are in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import anyio
from starlette._utils import get_route_path
from starlette.datastructures import URLPath
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

from twinengine import lazy_imports
from twinengine.api.route_groups import GROUPS, RouteGroup, build_included, group_routes
from twinengine.warmup import RequestsInFlight

__all__ = ["RouteGate", "RouteLoading", "RoutesUnavailable"]

log = logging.getLogger(__name__)


class RoutesUnavailable(Exception):
    """A group of routes could not be imported (a broken install): its requests get a 503 naming it."""


class _NotYetImported(BaseRoute):
    """Where a group's routes will be: matches nothing until then (``RouteGate`` lets no request that the
    group may serve reach the router before)."""

    def __init__(self, group: RouteGroup) -> None:
        self.group = group

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError(f"the routes of {self.group.name} are not imported yet")

    def __repr__(self) -> str:
        return f"_NotYetImported({self.group.name})"


class RouteLoading:
    """The groups one app has imported, and the imports under way (all on the app's event loop)."""

    def __init__(self, routes: list[BaseRoute], *, everything: Iterable[str] = ()) -> None:
        self.routes = routes  # the app's router.routes, stand-ins included
        self.everything = frozenset(everything)  # paths that need every group (the OpenAPI description)
        self.pending: dict[int, _NotYetImported] = {}
        self._imports: dict[int, asyncio.Future[None]] = {}
        self._limiter: anyio.CapacityLimiter | None = None

    def stand_ins(self) -> list[BaseRoute]:
        """One stand-in per group, in order, for the app's router."""
        self.pending = {index: _NotYetImported(group) for index, group in enumerate(GROUPS)}
        return list(self.pending.values())

    @property
    def complete(self) -> bool:
        return not self.pending

    def needed(self, path: str) -> list[int]:
        if path in self.everything:
            return list(self.pending)
        return [index for index in self.pending if GROUPS[index].serves(path)]

    async def serve(self, path: str) -> None:
        """Return once every group that may serve ``path`` is in the router."""
        for index in self.needed(path):
            await self.load(index)

    async def load_all(self) -> None:
        """Import every group still missing, in order, one at a time."""
        for index in list(self.pending):
            with contextlib.suppress(RoutesUnavailable):  # logged; the requests it serves get a 503 naming it
                await self.load(index)

    async def load(self, index: int) -> None:
        if index not in self.pending:
            return
        task = self._imports.get(index)
        if task is None:
            task = self._imports[index] = asyncio.ensure_future(self._import(index))
        await asyncio.shield(task)  # a request that gives up waiting does not stop the import

    async def _import(self, index: int) -> None:
        def imported() -> tuple[BaseRoute, ...]:
            with lazy_imports.LOCK:  # a group's modules with what they import: one thread at a time
                routes = group_routes(index)
                build_included(list(routes))
            return routes

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(2)  # not the request threads' limiter: never queued behind them
        try:
            routes = await anyio.to_thread.run_sync(imported, limiter=self._limiter)
        except Exception as exc:
            log.exception("importing the routes of %s failed", GROUPS[index].name)
            raise RoutesUnavailable(f"{GROUPS[index].name}: {type(exc).__name__}: {exc}") from exc
        stand_in = self.pending.pop(index)
        at = next(i for i, route in enumerate(self.routes) if route is stand_in)
        self.routes[at:at + 1] = routes  # on the event loop: no request is being matched meanwhile


class RouteGate:
    """ASGI middleware: a request waits until the route groups that may serve its path are imported; the
    HTTP requests in flight are counted in ``requests`` (the warm-ups give way to them)."""

    def __init__(self, app: ASGIApp, loading: RouteLoading, requests: RequestsInFlight | None = None) -> None:
        self.app = app
        self.loading = loading
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.requests is None:
            await self._pass(scope, receive, send)
            return
        self.requests.begun()
        try:
            await self._pass(scope, receive, send)
        finally:
            self.requests.ended()

    async def _pass(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.loading.complete:
            try:
                await self.loading.serve(get_route_path(scope))
            except RoutesUnavailable as exc:
                if scope["type"] == "http":
                    answer = JSONResponse({"code": "EngineUnavailable",
                                           "message": f"part of the API could not be loaded: {exc}"}, 503)
                    await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
