"""Running a ``run_once`` step in a loop until told to stop; several loops share one ``Daemons`` handle."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Daemons", "run_loop"]

log = logging.getLogger("twinengine.daemons")


def run_loop(name: str, step: Callable[[], int], *, interval: float, stop: threading.Event) -> None:
    """Call ``step`` until ``stop`` is set; sleep ``interval`` when it found nothing to do. An error is logged
    and the loop goes on after the interval (the next pass retries what failed)."""
    while not stop.is_set():
        try:
            done = step()
        except Exception:
            log.exception("%s: a pass failed; retrying after %.1f s", name, interval)
            done = 0
        if not done:
            stop.wait(interval)


@dataclass
class Daemons:
    """Loops started in threads (by ``twin serve``); ``stop()`` lets each finish its current pass."""

    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, name: str, step: Callable[[], int], *, interval: float) -> None:
        thread = threading.Thread(target=run_loop, args=(name, step), kwargs={"interval": interval,
                                                                              "stop": self.stop_event},
                                  name=f"twinengine-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=timeout)
        self.threads.clear()
