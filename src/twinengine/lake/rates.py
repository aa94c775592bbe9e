"""An endpoint's ``rate_limit`` option: the most bytes per second transfers into or out of it may move (a
slow or shared link). The conveyor paces its copies to it; compute placement takes it as the endpoint's
rate when the lake measured a faster one."""

from __future__ import annotations

import time

from twinengine.lake.models import Endpoint

__all__ = ["RATE_LIMIT_OPTION", "Pace", "rate_limit"]

RATE_LIMIT_OPTION = "rate_limit"


def rate_limit(*endpoints: Endpoint) -> float | None:
    """The lowest ``rate_limit`` option (bytes per second) of ``endpoints``; None when none sets one."""
    limits = [float((e.options or {})[RATE_LIMIT_OPTION]) for e in endpoints
              if (e.options or {}).get(RATE_LIMIT_OPTION)]
    return min(limits) if limits else None


class Pace:
    """Sleeps after each copied step so the copy's average stays at or under ``rate`` bytes per second."""

    def __init__(self, rate: float) -> None:
        self.rate, self.start, self.done = rate, time.monotonic(), 0

    def __call__(self, n: int) -> None:
        self.done += n
        ahead = self.done / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)
