"""Work a served engine does once, on a thread of its own, after it starts answering.

Loading a heavy library or opening a listing before the first answer would delay every first answer; leaving
it to the first request that needs it makes that request slow. A warm-up does it in between, and ``/health``
names it while it runs (``"warming": [...]``), so the engine never claims a warmth it does not have yet. A
warm-up that fails is logged and changes nothing: the first request that needs the work does it, as it would
without the warm-up.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import ClassVar, Self

__all__ = ["Warmup"]

log = logging.getLogger("twinengine.warmup")


class Warmup:
    """One piece of warming: subclasses set ``name`` (what ``/health`` says) and implement ``warm``."""

    name: ClassVar[str] = "abstract"

    def __init__(self) -> None:
        self.done = threading.Event()
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

    def _run(self) -> None:
        started = time.perf_counter()
        what = "failed"
        try:
            what = self.warm()
        except Exception:  # a closing runtime, an unreadable store: the first request does the work instead
            log.warning("warming %s failed", self.name, exc_info=True)
        finally:
            self.seconds = time.perf_counter() - started
            self.done.set()
        log.info("warmed %s (%s) in %.2f s", self.name, what, self.seconds)
