"""The assimilation part of the Python SDK, reached as ``client.assimilation``: run cycles on a twin and read
their records (innovations, analysis, provenance)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from twinengine.transport import segment
from twinengine.twin_assimilation.schemas import MAX_CYCLES, AssimilationResult, CyclePage, CycleRead, ScheduleRead

if TYPE_CHECKING:
    from twinengine.transport import Transport

__all__ = ["AssimilationClient"]

FIRST = 20  # with progress: the cycles of the first request; the next ones are sized to take about
REQUEST_SECONDS = 1.0  # this long each (progress moves about every second, few requests pay their fixed cost)
Progress = Callable[[int, int], None]


class AssimilationClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _path(self, twin: str, tail: str = "") -> str:
        return f"/api/v1/twins/{segment(twin)}/assimilations{tail}"

    def run(self, twin: str, *, method: str | None = None, members: int | None = None, seed: int | None = None,
            cycles: int = 1, what_if: str | None = None, progress: Progress | None = None,
            answer: Literal["cycles", "summary"] = "cycles") -> AssimilationResult:
        """Run up to ``cycles`` cycles on the observations since the twin's last cycle (``what_if``: on a new
        fork of that name); ``pending`` in the answer says how many observation times still wait.

        One request (of at most the engine's 1,000 cycles), waited for however long its cycles take (the
        engine answers when they are done: no read timeout ends the wait). With ``progress``, called as
        ``progress(done, total)``, the cycles are asked for in requests of about a second each (the first of
        20 cycles, the next sized at the rate the last one ran), so ``progress`` moves as they go and ``cycles``
        may exceed 1,000; ``total`` is what is known to wait (``cycles`` at most). The analyses are the same
        either way: each cycle's random draws come from its own seeded generators. ``answer="summary"``: the
        answer holds the count and the last cycle, not every cycle's record (``history`` reads them in bulk)."""
        if progress is None:
            return self._request(twin, method=method, members=members, seed=seed, cycles=cycles, what_if=what_if,
                                 answer=answer)
        done: list[CycleRead] = []
        count, last = 0, None
        target, fork, size = twin, what_if, FIRST
        while True:
            began = time.monotonic()
            got = self._request(target, method=method, members=members, seed=seed,
                                cycles=min(size, cycles - count, MAX_CYCLES), what_if=fork, answer=answer)
            if got.count:  # at the rate just seen, about REQUEST_SECONDS of cycles next time
                rate = got.count / max(time.monotonic() - began, 1e-3)
                size = max(1, min(MAX_CYCLES, int(rate * REQUEST_SECONDS)))
            target, fork = got.twin, None  # a what-if's later cycles go on on its fork
            done += got.cycles
            count, last = count + got.count, got.last or last
            progress(count, min(cycles, count + got.pending))
            if not got.count or got.pending == 0 or count >= cycles:
                return AssimilationResult(twin=target, cycles=done, count=count, last=last, pending=got.pending)

    def _request(self, twin: str, *, method: str | None, members: int | None, seed: int | None, cycles: int,
                 what_if: str | None, answer: str) -> AssimilationResult:
        body = {"method": method, "members": members, "seed": seed, "cycles": cycles, "what_if": what_if,
                "answer": None if answer == "cycles" else answer}
        # checked by the engine, which names the field of a bad value (AssimilationRequest); it answers when
        # the cycles are done, which a long backlog of a heavy model makes longer than any read timeout
        return self._transport.send(AssimilationResult, "POST", self._path(twin),
                                    {k: v for k, v in body.items() if v is not None}, until_done=True)

    def history(self, twin: str, *, format: Literal["csv", "parquet", "arrow"] = "csv", after: int = 0,
                limit: int | None = None) -> bytes:
        """The twin's analyses in bulk, a row per cycle (oldest first, numbered above ``after``): each cycle's
        time, revision and innovation statistics, and per state entry its analysis mean (``x[3]``), std
        (``x[3]:std``) and quantiles (``x[3]:q05``, ``:q50``, ``:q95``), as CSV, Parquet or an Arrow stream
        (``pyarrow.ipc.open_stream``). At most 100,000 cycles an answer: ``after`` the last one pages on."""
        params = {"format": format, "after": after} | ({"limit": limit} if limit is not None else {})
        return self._transport.request("GET", f"/api/v1/twins/{segment(twin)}/assimilation-history",
                                       params=params).content

    def list(self, twin: str, *, limit: int = 50, offset: int = 0) -> CyclePage:
        return self._transport.get(CyclePage, self._path(twin), limit=limit, offset=offset)

    def get(self, twin: str, cycle: str | int) -> CycleRead:
        """One cycle (id or number) with its innovations, observations, analysis and provenance."""
        return self._transport.get(CycleRead, self._path(twin, f"/{segment(str(cycle))}"))

    def schedule(self, twin: str) -> ScheduleRead:
        """When the twin's cycles run by themselves, and how the last pass ended (failures, last error)."""
        return self._transport.get(ScheduleRead, f"/api/v1/twins/{segment(twin)}/assimilation-schedule")

    def set_schedule(self, twin: str, on: str, every: str | None = None) -> ScheduleRead:
        """``on``: arrival, schedule (with ``every``, e.g. 1h) or off; overrides the app's for this twin."""
        body = {"on": on} | ({"every": every} if every is not None else {})
        return self._transport.send(ScheduleRead, "PUT", f"/api/v1/twins/{segment(twin)}/assimilation-schedule",
                                    body)
