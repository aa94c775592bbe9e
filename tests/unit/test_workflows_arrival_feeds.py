"""Chained arrival feeds: one cursor over several feeds; a cursor from before the chain keeps the first
feed's place and starts the others now, so what they held already is history, not arrivals."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from twinengine.workflows.arrival_feeds import Arrival, ArrivalFeed, ChainedArrivals


class Listed(ArrivalFeed):
    """Arrivals at integer times; the cursor is the last time seen."""

    def __init__(self, name: str, times: list[int]) -> None:
        self.name, self.times = name, times

    def since(self, cursor: str | None) -> tuple[list[Arrival], str | None]:
        last = int(cursor or 0)
        new = [t for t in self.times if t > last]
        at = datetime.fromtimestamp(0, UTC)
        return [Arrival(self.name, str(t), at) for t in new], str(max([last, *new]))

    def cursor_at(self, moment: datetime) -> str | None:
        return str(int(moment.timestamp()))


def test_one_cursor_over_several_feeds() -> None:
    chain = ChainedArrivals([Listed("local", [1, 2]), Listed("lake", [5])])
    found, cursor = chain.since(None)
    assert [(a.collection, a.item) for a in found] == [("local", "1"), ("local", "2"), ("lake", "5")]
    assert json.loads(cursor or "") == ["2", "5"]
    chain.feeds[1].times.append(7)  # type: ignore[attr-defined]
    found, _ = chain.since(cursor)
    assert [(a.collection, a.item) for a in found] == [("lake", "7")]


def test_a_cursor_from_before_the_chain_starts_the_new_feeds_now() -> None:
    chain = ChainedArrivals([Listed("local", [1, 2, 3]), Listed("lake", [5, 2_000_000_000_000])])
    found, _ = chain.since("2")  # a LocalArrivals cursor stored before the lake feed was chained
    assert [(a.collection, a.item) for a in found] == [("local", "3"), ("lake", "2000000000000")]
