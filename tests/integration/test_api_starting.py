"""``twin serve``'s starting shell: ``/health`` answers while the engine starts behind it, and requests that
need the engine wait for it instead of being refused."""

from __future__ import annotations

import asyncio
import gc
import threading
from pathlib import Path
from typing import Any

import httpx2 as httpx

from helpers import run_alone
from twinengine.api.starting import StartingApp
from twinengine.config import Settings


class HeldBack(StartingApp):
    """Builds the engine only once ``release`` is set, so that a test sees the shell in between."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.release = threading.Event()

    def _build(self) -> Any:
        assert self.release.wait(120)
        return super()._build()


async def _lifespan(app: StartingApp, inbox: asyncio.Queue[dict[str, str]],
                    outbox: asyncio.Queue[dict[str, str]]) -> None:
    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)  # type: ignore[arg-type]


async def _until_ok(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    for _ in range(1200):
        answer = await http.get(path)
        if answer.status_code == 200:
            return dict(answer.json())
        assert answer.status_code == 503 and answer.json()["code"] == "EngineUnavailable"
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never answered 200")


def test_health_answers_while_the_engine_starts_and_requests_wait(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = HeldBack(Settings(data_dir=tmp_path / "data", lake_daemons=False))
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        lifespan = asyncio.create_task(_lifespan(app, inbox, outbox))
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"  # listening before the engine
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine",
                                     timeout=120) as http:
            early = await _until_ok(http, "/health")  # the store is prepared: migrated, first admin
            assert early["database"] == "ok" and early["engine"] == "starting"
            waiting = asyncio.create_task(http.get("/api/v1/me"))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # it waits for the engine, it is not refused
            app.release.set()
            answer = await waiting
            assert answer.status_code == 401  # answered by the engine itself: no token
            late = (await http.get("/health")).json()
            assert late["status"] == "ok" and "engine" not in late
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan

    run_alone(scenario)


def test_an_engine_that_cannot_start_says_why_and_stops(tmp_path: Path) -> None:
    async def scenario() -> None:
        stopped = asyncio.Event()
        app = StartingApp(Settings(data_dir=tmp_path / "data", database_url="postgresql://nobody@127.0.0.1:9/x"),
                          on_failure=stopped.set)
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        lifespan = asyncio.create_task(_lifespan(app, inbox, outbox))
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        await asyncio.wait_for(stopped.wait(), 120)  # the server is told to stop
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as http:
            answer = await http.get("/api/v1/me")
        assert answer.status_code == 503 and "did not start" in answer.json()["message"]
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan

    run_alone(scenario)


class NeverBuilt(HeldBack):
    """Fails to build once released: the test needs the shell only, not an engine on a stream server."""

    def _build(self) -> Any:
        assert self.release.wait(120)
        raise RuntimeError("held back by the test")


def test_a_starting_process_of_several_says_it_is_not_primary(tmp_path: Path) -> None:
    """A probe asking which of several processes runs the loops (``twin serve --processes``) reads ``primary``
    from every answer, the starting process's included."""
    async def scenario() -> None:
        app = NeverBuilt(Settings(data_dir=tmp_path / "data", lake_daemons=False, serve_processes=2,
                                  stream_backend="nats", nats_url="nats://127.0.0.1:9"))
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        lifespan = asyncio.create_task(_lifespan(app, inbox, outbox))
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine",
                                     timeout=120) as http:
            first = await http.get("/health")
            assert first.json()["primary"] is False  # the store being prepared (503) or prepared (200)
            early = await _until_ok(http, "/health")
            assert early["engine"] == "starting" and early["primary"] is False
        app.release.set()
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan

    run_alone(scenario)


class Collecting(StartingApp):
    """Notes whether the garbage collector runs while the engine is built, then fails: no engine is needed."""

    collecting: bool | None = None

    def _build(self) -> Any:
        self.collecting = gc.isenabled()
        raise RuntimeError("held back by the test")


def test_the_garbage_collector_is_paused_while_the_engine_starts_and_runs_after(tmp_path: Path) -> None:
    """What the start imports and builds lives on: collections during it only walk it again. Once the start
    has ended (here it failed) the collector runs as before."""
    async def scenario() -> None:
        stopped = asyncio.Event()
        app = Collecting(Settings(data_dir=tmp_path / "data", lake_daemons=False), on_failure=stopped.set)
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        lifespan = asyncio.create_task(_lifespan(app, inbox, outbox))
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        await asyncio.wait_for(stopped.wait(), 120)
        assert app.collecting is False and gc.isenabled()
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan

    assert gc.isenabled()
    run_alone(scenario)


class HeldStore(HeldBack):
    """Prepares the store only once ``store`` is set, and builds the engine once ``release`` is."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.store = threading.Event()

    def _prepare_store(self) -> None:
        assert self.store.wait(120)
        super()._prepare_store()


def test_ready_only_once_migrated_started_and_warm(tmp_path: Path) -> None:
    """``/health/ready`` is the readiness probe: 503 while the store is prepared and while the engine starts,
    naming what it waits for; 200 once the engine is up and has run its warm-ups. ``/health`` (liveness)
    answers 200 from the moment the store is prepared."""
    async def scenario() -> None:
        app = HeldStore(Settings(data_dir=tmp_path / "data", lake_daemons=False))
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        lifespan = asyncio.create_task(_lifespan(app, inbox, outbox))
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine",
                                     timeout=120) as http:
            migrating = await http.get("/health/ready")
            assert migrating.status_code == 503 and migrating.json()["waiting_for"] == ["store"]
            alive = await _until_ok(http, "/health")  # alive once the store is open, while it is migrated
            assert alive["engine"] == "starting"
            app.store.set()
            for _ in range(1200):  # the store prepared, the engine held back
                starting = (await http.get("/health/ready")).json()
                if starting["waiting_for"] != ["store"]:
                    break
                await asyncio.sleep(0.05)
            assert starting["waiting_for"] == ["engine"] and starting["status"] == "starting"
            app.release.set()
            ready = await _until_ok(http, "/health/ready")
            assert ready["status"] == "ready" and ready["database"] == "ok"
            health = (await http.get("/health")).json()
            assert "warming" not in health  # every warm-up has run
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan

    run_alone(scenario)
