"""A served engine's warm-ups run one after another, each once no request is in flight (or after a while: a
stream may stay open for hours), and the sequence says when all have run."""

from __future__ import annotations

import asyncio

import pytest

from helpers import run_alone
from twinengine import warmup
from twinengine.warmup import RequestsInFlight, Warmup, WarmupSequence

ran: list[str] = []


class First(Warmup):
    name = "first"

    def warm(self) -> str:
        ran.append(self.name)
        return "noted"


class Second(First):
    name = "second"


class Failing(Warmup):
    name = "failing"

    def warm(self) -> str:
        raise RuntimeError("a library that cannot load")


def test_warmups_run_in_turn_once_the_requests_in_flight_have_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warmup, "GIVE_WAY", 600.0)  # no give-way ends by itself within this test
    ran.clear()

    async def scenario() -> None:
        requests = RequestsInFlight()
        requests.begun()
        parts = [First(), Failing(), Second()]
        sequence = WarmupSequence(parts, requests=requests, then=lambda: ran.append("then")).start()
        # a request is in flight: the first part does not begin (a slow machine could only hide a failure here)
        assert not await asyncio.to_thread(parts[0].done.wait, 1.0)
        assert ran == [] and sequence.warming == ["first", "failing", "second"]
        requests.ended()
        await asyncio.wait_for(sequence.finished.wait(), 120)
        assert ran == ["first", "second", "then"]  # in order; the one that failed is logged, not waited for
        assert sequence.warming == [] and not any(part.warming for part in parts)

    run_alone(scenario)
