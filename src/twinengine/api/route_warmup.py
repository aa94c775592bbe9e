"""The API's routes built once the engine answers, not before.

FastAPI builds the routes of each included router when the first request reaches it (30-80 ms on a group's
first request, 0.2-0.8 s for all of ours). Built before the engine answered, that delayed every first answer;
built on a thread as it starts answering, a person's first request to a group rarely pays it, and ``/health``
names it while it runs (``"warming": ["routes"]``). FastAPI builds each router under a lock of its own, so a
request that reaches one first builds it, and the thread finds it built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import anyio
from starlette.types import ASGIApp, Message

from twinengine.warmup import Warmup

__all__ = ["RouteWarmup", "build_included"]

log = logging.getLogger(__name__)

# a path no route takes: its request, sent straight to the router, builds whatever else a first request builds
UNROUTED = "/.well-known/twinengine/routes-built-at-start"


def build_included(routes: list[Any]) -> None:
    """Build every included router's routes, nested ones too. FastAPI builds a group when a request is
    first matched against it (``api/route_groups.py`` includes them once per process, so once per process)."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if candidates is not None:
            route.effective_low_priority_routes()
            build_included(candidates())


class RouteWarmup(Warmup):
    """Builds every route of ``router`` (the app's) on a worker thread, then sends it one request for a path
    no route takes (no middleware sees it); ``done`` is set when it ended (built, or failed and logged: each
    group is then built by its first request, as with ``warm_routes`` off). Unlike the other warm-ups it is
    driven from the event loop, which the request it sends must run on."""

    name = "routes"

    def __init__(self, router: ASGIApp) -> None:
        super().__init__()
        self.router = router
        self._task: asyncio.Task[None] | None = None

    def start(self) -> RouteWarmup:
        """Begin on the running event loop; the caller goes on at once."""
        self._task = asyncio.get_running_loop().create_task(self._build(), name="twin-route-warmup")
        return self

    async def stop(self) -> None:
        """The engine stops: a build in progress ends first (a thread is not interrupted), the rest is skipped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _build(self) -> None:
        try:
            await anyio.to_thread.run_sync(build_included, getattr(self.router, "routes", []))
            await self.router(_unrouted_scope(), _receive, _send)
        except Exception:  # the first request to each group builds it, as it would without the warm-up
            log.warning("building the API's routes failed", exc_info=True)
        finally:
            self.done.set()


def _unrouted_scope() -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": UNROUTED, "raw_path": UNROUTED.encode(), "root_path": "", "query_string": b"", "headers": [],
            "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0)}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None
