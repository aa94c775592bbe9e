"""The API's routes imported and built once the engine answers, not before.

FastAPI builds the routes of each included router when the first request reaches it (30-80 ms on a group's
first request, 0.2-0.8 s for all of ours). Built before the engine answered, that delayed every first answer;
built on a thread as it starts answering, a person's first request to a group rarely pays it, and ``/health``
names it while it runs (``"warming": ["routes"]``). FastAPI builds each router under a lock of its own, so a
request that reaches one first builds it, and the thread finds it built. In an app built with ``lazy_routes``
the groups are first imported here, one at a time (``api.route_loading``), unless a request needed one sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import anyio
from starlette.types import ASGIApp, Message

from twinengine.api.route_groups import build_included
from twinengine.api.route_loading import RouteLoading
from twinengine.warmup import Warmup

__all__ = ["RouteWarmup"]

log = logging.getLogger(__name__)

# a path no route takes: its request, sent straight to the router, builds whatever else a first request builds
UNROUTED = "/.well-known/twinengine/routes-built-at-start"


class RouteWarmup(Warmup):
    """Imports the groups not imported yet (``loading``: an app built with ``lazy_routes``), builds every route
    of ``router`` (the app's) on a worker thread, then sends it one request for a path no route takes (no
    middleware sees it); ``done`` is set when it ended (built, or failed and logged: each group is then built
    by its first request, as with ``warm_routes`` off). Unlike the other warm-ups it is driven from the event
    loop, which the request it sends must run on."""

    name = "routes"

    def __init__(self, router: ASGIApp, loading: RouteLoading | None = None) -> None:
        super().__init__()
        self.router = router
        self.loading = loading
        self._task: asyncio.Task[None] | None = None

    def start(self) -> RouteWarmup:
        """Begin on the running event loop; the caller goes on at once."""
        self._task = asyncio.get_running_loop().create_task(self.run_async(), name="twin-route-warmup")
        return self

    async def run_async(self) -> None:
        """The whole warm-up, awaited on the event loop (``warmup.WarmupSequence``)."""
        await self._build()

    async def stop(self) -> None:
        """The engine stops: a build in progress ends first (a thread is not interrupted), the rest is skipped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _build(self) -> None:
        started = time.perf_counter()
        try:
            if self.loading is not None:
                await self.loading.load_all()
            await anyio.to_thread.run_sync(build_included, getattr(self.router, "routes", []))
            await self.router(_unrouted_scope(), _receive, _send)
        except Exception:  # the first request to each group builds it, as it would without the warm-up
            log.warning("building the API's routes failed", exc_info=True)
        finally:
            self.seconds = time.perf_counter() - started
            self.done.set()
        log.info("warmed %s in %.2f s", self.name, self.seconds)


def _unrouted_scope() -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": UNROUTED, "raw_path": UNROUTED.encode(), "root_path": "", "query_string": b"", "headers": [],
            "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0)}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None
