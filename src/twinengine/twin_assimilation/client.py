"""The assimilation part of the Python SDK, reached as ``client.assimilation``: run cycles on a twin and read
their records (innovations, analysis, provenance)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.transport import segment
from twinengine.twin_assimilation.schemas import AssimilationResult, CyclePage, CycleRead, ScheduleRead

if TYPE_CHECKING:
    from twinengine.transport import Transport

__all__ = ["AssimilationClient"]


class AssimilationClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _path(self, twin: str, tail: str = "") -> str:
        return f"/api/v1/twins/{segment(twin)}/assimilations{tail}"

    def run(self, twin: str, *, method: str | None = None, members: int | None = None, seed: int | None = None,
            cycles: int = 1, what_if: str | None = None) -> AssimilationResult:
        """Run up to ``cycles`` cycles on the observations since the twin's last cycle (``what_if``: on a new
        fork of that name); ``pending`` in the answer says how many observation times still wait."""
        body = {"method": method, "members": members, "seed": seed, "cycles": cycles, "what_if": what_if}
        # checked by the engine, which names the field of a bad value (AssimilationRequest)
        return self._transport.send(AssimilationResult, "POST", self._path(twin),
                                    {k: v for k, v in body.items() if v is not None})

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
