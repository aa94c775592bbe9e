"""Dataset arrivals from the lake: a dataset attached to a container is a new item of that STAC collection,
so a workflow ``dataset`` trigger on the collection (container name, glob allowed) fires for it.

The cursor holds a floor (the trigger's start: older items are history) and the attachment time of the newest
item seen. Each pass looks a little further back than that (a transaction may commit an earlier timestamp
late); the trigger's per-event record drops the repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import aliased

from twinengine.auth.principal import Principal
from twinengine.lake.collections import collection_id
from twinengine.lake.grants import Readers
from twinengine.lake.models import Attachment, Did
from twinengine.lake.schemas import DidType
from twinengine.store.engine import Database
from twinengine.workflows.arrival_feeds import Arrival, ArrivalFeed

__all__ = ["LakeArrival", "LakeArrivals"]

OVERLAP = timedelta(seconds=30)


@dataclass(frozen=True)
class LakeArrival(Arrival):
    """A lake item; its data also names the dataset (``scope:name``) and its collection id for
    ``load_collection`` (``scope.name``)."""

    did: str = ""
    container: str = ""  # the collection's ``scope:name``

    def data(self) -> dict[str, Any]:
        scope, _, name = self.did.partition(":")
        return super().data() | {"did": self.did, "dataset": collection_id(scope, name)}


_PARENT, _CHILD = aliased(Did, name="parent"), aliased(Did, name="child")  # once: not garbage every poll


class LakeArrivals(ArrivalFeed):
    def __init__(self, db: Database, *, overlap: timedelta = OVERLAP) -> None:
        self.db, self.overlap = db, overlap

    def since(self, cursor: str | None) -> tuple[list[Arrival], str | None]:
        floor, last = _parse(cursor)
        start = max(floor, last - self.overlap)
        parent, child = _PARENT, _CHILD
        with self.db.reading() as session:  # in the trigger pass's unit of work: no second connection
            rows = session.execute(
                select(parent.scope, parent.name, child.scope, child.name, Attachment.created_at)
                .join(parent, parent.id == Attachment.parent_id).join(child, child.id == Attachment.child_id)
                .where(parent.type == DidType.CONTAINER, child.type == DidType.DATASET,
                       Attachment.created_at > start)
                .order_by(Attachment.created_at)).all()
        arrivals: list[Arrival] = [LakeArrival(collection, item, at, did=f"{scope}:{item}",
                                               container=f"{parent_scope}:{collection}")
                                   for parent_scope, collection, scope, item, at in rows]
        newest = max([last, *(a.at for a in arrivals)])
        return arrivals, f"{floor.isoformat()}/{newest.isoformat()}"

    def cursor_at(self, moment: datetime) -> str | None:
        return f"{moment.isoformat()}/{moment.isoformat()}"

    def readable_by(self, arrival: Arrival, principal: Principal) -> bool:
        """The item's dataset and its container must both be readable (``lake.grants``): a container another
        user names like a twin's pattern, or a dataset of theirs in a shared one, fires nothing of the twin's."""
        if not isinstance(arrival, LakeArrival):
            return True
        with self.db.reading() as session:
            readers = Readers(session, principal)
            for text in (arrival.container, arrival.did):
                scope, _, name = text.partition(":")
                row = session.scalar(select(Did).where(Did.scope == scope, Did.name == name))
                if row is None or not readers(row):
                    return False
        return True


def _parse(cursor: str | None) -> tuple[datetime, datetime]:
    """``FLOOR/LAST``: nothing attached at or before FLOOR is an arrival; LAST is the newest one seen."""
    if not cursor:
        start = datetime.min.replace(tzinfo=UTC)
        return start, start + OVERLAP
    floor, _, last = cursor.partition("/")
    try:
        return datetime.fromisoformat(floor), datetime.fromisoformat(last or floor)
    except ValueError:
        start = datetime.min.replace(tzinfo=UTC)
        return start, start + OVERLAP
