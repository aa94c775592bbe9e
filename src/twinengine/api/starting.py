"""Serve at once, start the engine behind: what ``twin serve`` hands uvicorn.

Importing the whole API (FastAPI, every router and service, the libraries they use) and starting it takes
seconds. This ASGI app is listening within a moment and brings the engine up in the background, in two steps:

1. the store: opened, then migrated, with its first admin (printed once). Until it is open ``/health``
   answers 503 ``starting`` (the SDK raises ``EngineUnavailable``, as for an engine not yet listening); from
   then on it checks the store as the engine's own ``/health`` does, and says ``engine: starting``.
2. the engine: the API is imported, built and started (its lifespan). Every request but ``/health`` and
   ``/health/ready`` waits for it: nothing is refused for coming early. Once it is up, everything goes
   straight to it. Its groups of routes are imported as requests first need them, the rest in the background
   (``api/route_loading.py``), and its warm-ups run in turn (``twinengine.warmup``).

``/health`` is the liveness probe: 200 from the moment the store is open. ``/health/ready`` is the readiness
probe: 503 until the store is migrated, the engine started and every warm-up has run (the engine's own
``/health/ready`` from then on), 200 after.

If a step fails, the error is printed, waiting requests get a 503 naming it, and the server is told to stop.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twinengine._version import __version__
from twinengine.api.log_redaction import install_log_redaction
from twinengine.config import Settings

__all__ = ["StartingApp", "collector_as_served"]

log = logging.getLogger("twinengine.api")

READY = "/health/ready"
PROBES = frozenset({"/health", READY})


class StartingApp:
    """An ASGI app that answers ``/health`` at once and forwards everything else to the engine's app once it
    has started; ``on_failure`` is called (on the event loop) when it cannot start."""

    def __init__(self, settings: Settings, *, on_failure: Callable[[], None] = lambda: None) -> None:
        install_log_redaction()  # uvicorn configured logging before it loaded this app
        self.settings = settings
        self.on_failure = on_failure
        self.app: ASGIApp | None = None
        self.failed: str | None = None
        self._db: Any = None  # the store, once opened (step 1)
        self._prepared = False  # migrated, its first admin made
        self._ready: asyncio.Event | None = None
        self._starting: asyncio.Task[None] | None = None
        self._lifespan: _Lifespan | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
            return
        if scope["type"] == "http" and scope["path"] in PROBES and scope["method"] == "GET":
            if scope["path"] == READY:
                await self._ready_probe(send)
                return
            if self.app is not None:  # the engine's answer, without its middleware (see api/probe.py)
                await self._engine_health(send)
                return
            if self.failed is None:
                await self._health(send)
                return
        if self.app is None:
            assert self._ready is not None, "the server did not run the lifespan"
            await self._ready.wait()
        if self.app is None:
            if scope["type"] == "http":
                await _json(send, 503, {"code": "EngineUnavailable",
                                        "message": f"the engine did not start: {self.failed}"})
            return
        await self.app(scope, receive, send)

    # -- the server's lifespan ---------------------------------------------------------------------------

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._ready = asyncio.Event()
                self._starting = asyncio.create_task(self._start())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        assert self._ready is not None
        collecting = _pause_garbage_collector()
        try:
            await anyio.to_thread.run_sync(self._open_store)
            await anyio.to_thread.run_sync(self._prepare_store)
            self._prepared = True
            app = await anyio.to_thread.run_sync(self._build)
            self._lifespan = _Lifespan(app)
            await self._lifespan.startup()
            _freeze_what_start_built()
            warming = getattr(app.state, "warming", None)  # type: ignore[attr-defined]
            if warming is not None:  # what the warm-ups import, frozen too once they have all run
                warming.then = _settle_garbage_collector
            self.app = app
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("the engine did not start")
            print(f"twinengine: the engine did not start: {self.failed}", file=sys.stderr, flush=True)
            self.on_failure()
        finally:
            if collecting:
                gc.enable()
            self._ready.set()
        if self._db is not None:  # the engine's own /health takes over
            db, self._db = self._db, None
            await anyio.to_thread.run_sync(db.dispose)

    async def _stop(self) -> None:
        if self._starting is not None:
            await self._starting
        if self._lifespan is not None:
            await self._lifespan.shutdown()

    # -- the two steps (on worker threads) -------------------------------------------------------------

    def _open_store(self) -> None:
        from twinengine.store.engine import Database

        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._db = Database(self.settings.db_url, pool_size=2)

    def _prepare_store(self) -> None:
        from twinengine.bootstrap import announce_admin_token, issuer_for, prepare_store

        token = prepare_store(self._db, issuer_for(self.settings), self.settings)
        if token:
            announce_admin_token(token, self.settings.data_dir)

    def _build(self) -> ASGIApp:
        from twinengine.api.app import create_app

        return create_app(self.settings, lazy_routes=True)

    # -- /health ----------------------------------------------------------------------------------------

    async def _engine_health(self, send: Send) -> None:
        """The engine's own ``/health`` answer, given here on the event loop: under load a liveness probe
        must not wait for the request middleware (metrics, audit, body limits) nor for a thread."""
        from twinengine.api.health import health_answer

        assert self.app is not None
        state = self.app.state  # type: ignore[attr-defined]
        status, body = await health_answer(state, state.runtime)
        await _json(send, status, body)

    async def _ready_probe(self, send: Send) -> None:
        """Readiness: the engine's own answer once it is up (``api.health.readiness_answer``), else 503 with what
        it waits for, as the engine's answer says it."""
        if self.app is not None:
            from twinengine.api.health import readiness_answer

            state = self.app.state  # type: ignore[attr-defined]
            status, body = await readiness_answer(state, state.runtime)
            await _json(send, status, body)
            return
        waiting = "engine" if self._prepared else "store"
        message = f"the engine did not start: {self.failed}" if self.failed is not None else \
            f"the engine is not ready: waiting for {waiting}"
        await _json(send, 503, {"code": "EngineUnavailable", "message": message, "status": "starting",
                                "version": __version__, "waiting_for": [waiting]})

    async def _health(self, send: Send) -> None:
        """One of several processes says ``primary: false`` while it starts, as the engine's own answer does
        until it holds the primary lock: a probe asking which process runs the loops gets the same keys from
        every process, starting or not."""
        db = self._db
        several: dict[str, Any] = {"primary": False} if self.settings.serve_processes > 1 else {}
        if db is None:
            await _json(send, 503, {"code": "EngineUnavailable", "message": "the engine is starting: its store is "
                                    "being prepared", "status": "starting", "version": __version__,
                                    "database": "starting", **several})
            return
        database = await anyio.to_thread.run_sync(_check_store, db)
        body = {"status": "ok" if database == "ok" else "degraded", "version": __version__, "database": database,
                "backend": db.backend, "engine": "starting", **several}
        await _json(send, 200 if database == "ok" else 503, body)


def _check_store(db: Any) -> str:
    from sqlalchemy import text

    try:
        with db.session(readonly=True) as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return "ok"


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def _pause_garbage_collector() -> bool:
    """No collection while the engine starts: importing and building it allocates about half a million
    objects that all live on, and the collections they set off walk them again and again (0.3-0.6 s of the
    start, for almost nothing collected). Returns whether the collector ran before (it runs again after)."""
    collecting = gc.isenabled()
    gc.disable()
    return collecting


def _freeze_what_start_built() -> None:
    """Move what the start allocated (modules, routes, caches: about half a million objects) out of the
    collector's way, and collect less often. A full collection otherwise walks all of them and stops every
    thread, the event loop included, for up to half a second under load: the liveness probe's slowest
    answers. No collection first: it found next to nothing to free (the start's objects all live on) and
    took 0.2-0.4 s of the first answer."""
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def _settle_garbage_collector() -> None:
    """Once the warm-ups have run: collect what they left (the frozen objects are not walked again) and
    freeze what they imported, before the engine says it is ready."""
    gc.collect()
    gc.freeze()


def collector_as_served() -> None:
    """The collector as ``twin serve`` leaves it once ready (what exists now frozen, collections rarer), for
    an engine built in a process of its own by other means (a bench timing it in-process): a full collection
    otherwise walks every object the start made, 0.3 s in the middle of a timed request."""
    gc.collect()
    _freeze_what_start_built()


class _Lifespan:
    """Runs an ASGI app's lifespan on this event loop: startup now, shutdown when the server stops."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _next(self) -> Message:
        assert self.task is not None
        reply = asyncio.ensure_future(self.outbox.get())
        await asyncio.wait({reply, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if reply.done():
            return reply.result()
        reply.cancel()
        self.task.result()  # raises what the app raised
        raise RuntimeError("the app's lifespan ended without answering")

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self.task = asyncio.ensure_future(self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        answer = await self._next()
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(answer.get("message") or "the engine's startup failed")

    async def shutdown(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self._next()
        assert self.task is not None
        await self.task
