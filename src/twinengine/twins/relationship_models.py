"""Tables of twin relationships: links between twins over spans of valid time, and a clock per type.

A link is never erased: unlinking closes its span (``valid_to``), so the graph can be read as of any time.
Deleting a twin deletes its links with it, as it deletes its state log.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, LogId, UTCDateTime

__all__ = ["LinkClock", "TwinLink"]


class TwinLink(Base):
    """``source`` is linked to ``target`` by ``type`` from ``valid_from`` until ``valid_to`` (open: None).

    The span is half-open, ``[valid_from, valid_to)``: a link closed at the time it was opened never existed
    for a reader. Each change is numbered by its type's clock (``opened_revision``, ``closed_revision``).
    """

    __tablename__ = "twin_links"
    __table_args__ = (
        # One seek per hop and direction: the twins a hop starts from, then the type.
        Index("ix_twin_links_out", "source_id", "type", "valid_from"),
        Index("ix_twin_links_in", "target_id", "type", "valid_from"),
    )

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"))
    target_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opened_revision: Mapped[int] = mapped_column(Integer)
    closed_revision: Mapped[int | None] = mapped_column(Integer)
    opened_by: Mapped[str] = mapped_column(String(64))
    closed_by: Mapped[str | None] = mapped_column(String(64))


class LinkClock(Base):
    """Per relationship type: the number of its last change and that change's time.

    Every change of a type updates this row first, which locks it (PostgreSQL; SQLite serialises writers),
    so the checks that follow (cycles, cardinality, duplicates) see every committed link of the type, and
    changes of a type are never earlier than the one before: the graph at a time is the events up to it.
    """

    __tablename__ = "link_clocks"

    type: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
