"""Where dataset arrivals come from, for the triggers that fire on them: a feed answers ``since(cursor)``
with the arrivals after it. The local collections folder is one feed, the lake another
(``workflows.lake_arrivals``), several are chained as one. The engine holds its feed; the triggers read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from twinengine.auth.principal import Principal
from twinengine.collections.local import collection_files
from twinengine.store.base import utcnow

__all__ = ["Arrival", "ArrivalFeed", "ChainedArrivals", "LocalArrivals"]


@dataclass(frozen=True)
class Arrival:
    """A new dataset (or item of one) the engine can read."""

    collection: str
    item: str
    at: datetime

    def data(self) -> dict[str, Any]:
        return {"collection": self.collection, "item": self.item, "datetime": self.at.isoformat()}


class ArrivalFeed:
    """Where dataset arrivals come from: ``since(cursor) -> (arrivals, new cursor)``. The lake feeds STAC items."""

    def since(self, cursor: str | None) -> tuple[list[Arrival], str | None]:
        raise NotImplementedError

    def cursor_at(self, moment: datetime) -> str | None:
        """The cursor after which everything that arrives later than ``moment`` is an arrival."""
        raise NotImplementedError

    def readable_by(self, arrival: Arrival, principal: Principal) -> bool:
        """Whether ``principal`` may read the arrival: a trigger fires only for data the identity its runs act
        for may read. Every identity here; a feed of users' data narrows it (the lake asks ``lake.grants``)."""
        return True


class LocalArrivals(ArrivalFeed):
    """Collections appearing in the local collections folder (each new NAME.zarr, NAME.nc, NAME.grib2... is an
    arrival)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def since(self, cursor: str | None) -> tuple[list[Arrival], str | None]:
        from datetime import UTC

        if not self.root.is_dir():
            return [], cursor or "0"  # nothing yet: everything that appears later is an arrival
        last = int(cursor or 0)
        found = []
        for cid, (path, _) in collection_files(self.root).items():
            stamp = path.stat().st_mtime_ns
            if stamp > last:
                found.append((stamp, Arrival(cid, cid, datetime.fromtimestamp(stamp / 1e9, UTC))))
        found.sort(key=lambda item: item[0])
        newest = max([s for s, _ in found], default=last)
        return [a for _, a in found], str(newest)

    def cursor_at(self, moment: datetime) -> str | None:
        return str(int(moment.timestamp() * 1_000_000_000))


class ChainedArrivals(ArrivalFeed):
    """Several feeds as one (the local collections folder and the lake); the cursor is a JSON list of theirs."""

    def __init__(self, feeds: list[ArrivalFeed]) -> None:
        self.feeds = feeds

    def _split(self, cursor: str | None) -> list[str | None]:
        if cursor is None:
            return [None] * len(self.feeds)
        try:
            parts = json.loads(cursor)
        except ValueError:
            parts = None
        if not isinstance(parts, list) or len(parts) != len(self.feeds):
            # A single feed's cursor from before the chain: the other feeds start now (older is history).
            now = utcnow()
            parts = [cursor if i == 0 else feed.cursor_at(now) for i, feed in enumerate(self.feeds)]
        return parts

    def since(self, cursor: str | None) -> tuple[list[Arrival], str | None]:
        found: list[Arrival] = []
        cursors: list[str | None] = []
        for feed, part in zip(self.feeds, self._split(cursor), strict=True):
            arrivals, after = feed.since(part)
            found += arrivals
            cursors.append(after)
        return found, json.dumps(cursors)

    def cursor_at(self, moment: datetime) -> str | None:
        return json.dumps([feed.cursor_at(moment) for feed in self.feeds])

    def readable_by(self, arrival: Arrival, principal: Principal) -> bool:
        return all(feed.readable_by(arrival, principal) for feed in self.feeds)
