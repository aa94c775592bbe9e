"""Which MQTT topic feeds which stream of a twin, and for whom: a binding appends for the identity that made
it, so it lives with the twin whose grants decide it (``twins.service`` drops an identity's bindings when its
grant goes or is lowered to ``read``). ``streams`` subscribes to them and names the table among its own.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, UTCDateTime, utcnow
from twinengine.store.changes import watch

__all__ = ["StreamBinding"]


class StreamBinding(Base):
    """An MQTT topic the engine subscribes to and appends to a twin's stream (the per-twin topic mapping)."""

    __tablename__ = "stream_bindings"

    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    mqtt_topic: Mapped[str] = mapped_column(String(255), unique=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


watch(StreamBinding, "bindings", lambda row: row.twin_id)  # the MQTT bridge and functions learn of new bindings
