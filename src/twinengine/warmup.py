"""Work a served engine does once, after it starts answering.

Loading a heavy library or opening a listing before the first answer would delay every first answer; leaving
it to the first request that needs it makes that request slow. A warm-up does it in between, and ``/health``
names it until it has run (``"warming": [...]``), so the engine never claims a warmth it does not have yet;
``/health/ready`` answers 200 only once every warm-up has run. A warm-up that fails is logged and changes
nothing: the first request that needs the work does it, as it would without the warm-up.

A served engine runs its warm-ups one after another (``WarmupSequence``), not side by side: they are Python
work that takes turns at the interpreter lock anyway, so together they end no sooner, and each request that
arrives meanwhile would share the lock with all of them instead of one. Between two warm-ups the sequence
gives way to requests in flight (``RequestsInFlight``, for up to ``GIVE_WAY`` seconds each time): a request
sent before the engine is warm does what it needs itself, without sharing the lock with the next warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Self

import anyio

from twinengine import lazy_imports

__all__ = ["GIVE_WAY", "RequestsInFlight", "Warmup", "WarmupSequence"]

GIVE_WAY = 2.0  # seconds a warm-up waits at most for the requests in flight to end before it begins

log = logging.getLogger("twinengine.warmup")


class Warmup:
    """One piece of warming: subclasses set ``name`` (what ``/health`` says) and implement ``warm``."""

    name: ClassVar[str] = "abstract"

    def __init__(self) -> None:
        self.done = threading.Event()
        self.stopping = threading.Event()  # the engine stops: a long warm-up ends early (its pools are closing)
        self.seconds: float | None = None

    def warm(self) -> str:
        """Do the work; returns what was done, for the log line."""
        raise NotImplementedError

    def start(self) -> Self:
        """Begin on a thread of its own; the caller goes on at once."""
        threading.Thread(target=self._run, name=f"twin-{self.name}-warmup", daemon=True).start()
        return self

    @property
    def warming(self) -> bool:
        return not self.done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    async def run_async(self) -> None:
        """The whole warm-up on a worker thread, awaited; left to end on its own if the engine stops first."""
        await anyio.to_thread.run_sync(self._run, abandon_on_cancel=True, limiter=anyio.CapacityLimiter(1))

    def _run(self) -> None:
        started = time.perf_counter()
        what = "failed"
        try:
            with lazy_imports.LOCK:  # a warm-up imports large module graphs: one thread at a time
                what = self.warm()
        except Exception:  # a closing runtime, an unreadable store: the first request does the work instead
            log.warning("warming %s failed", self.name, exc_info=True)
        finally:
            self.seconds = time.perf_counter() - started
            self.done.set()
        log.info("warmed %s (%s) in %.2f s", self.name, what, self.seconds)


class RequestsInFlight:
    """The requests an app is answering (counted on its event loop), and a wait for a moment without any."""

    def __init__(self) -> None:
        self.count = 0
        self._none = asyncio.Event()
        self._none.set()

    def begun(self) -> None:
        self.count += 1
        self._none.clear()

    def ended(self) -> None:
        self.count -= 1
        if not self.count:
            self._none.set()

    async def none_for_up_to(self, seconds: float) -> None:
        """Return once no request is in flight, or after ``seconds`` (a stream may stay open for hours)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none.wait(), seconds)


class WarmupSequence:
    """Runs warm-ups in turn on the event loop that serves the engine, each once ``requests`` (if given) has
    none in flight or ``GIVE_WAY`` seconds have passed; once all have run, ``then`` (if given) is called on the
    event loop, and ``finished`` is set."""

    def __init__(self, warmups: Sequence[Warmup], *, then: Callable[[], None] | None = None,
                 requests: RequestsInFlight | None = None) -> None:
        self.warmups = list(warmups)
        self.then = then
        self.requests = requests
        self.finished = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def warming(self) -> list[str]:
        """The warm-ups that have not run yet, in order."""
        return [w.name for w in self.warmups if w.warming]

    def start(self) -> WarmupSequence:
        """Begin on the running event loop; the caller goes on at once."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="twin-warmups")
        return self

    async def stop(self) -> None:
        """The engine stops: the warm-up under way is told to end early, the rest are skipped."""
        for warmup in self.warmups:
            warmup.stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        for warmup in self.warmups:
            if self.requests is not None:
                await self.requests.none_for_up_to(GIVE_WAY)
            await warmup.run_async()
        if self.then is not None:
            self.then()
        self.finished.set()
