"""Tables of the streams package. Records live in the stream log, not here: these rows hold MQTT bindings,
function consumer offsets, dead letters, retraining buffers and compacted segments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, LogId, UTCDateTime, utcnow
from twinengine.twins.stream_bindings import StreamBinding

__all__ = ["BufferFill", "CompactedSegment", "DeadLetter", "RetrainBuffer", "StreamBinding", "StreamConsumer"]

_TWIN = "twins.id"


class StreamConsumer(Base):
    """Checkpoint of a function on arrival: every record below ``offset`` was handled (at-least-once)."""

    __tablename__ = "stream_consumers"

    twin_id: Mapped[str] = mapped_column(ForeignKey(_TWIN, ondelete="CASCADE"), primary_key=True)
    function: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64))
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Paused after too many dead-lettered batches in a row: why, when, and the first offset of that run
    # (``resume`` takes the records again from there).
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_from: Mapped[int | None] = mapped_column(BigInteger)


class DeadLetter(Base):
    """Records a function could not handle after its retries, with the reason."""

    __tablename__ = "stream_dead_letters"

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey(_TWIN, ondelete="CASCADE"), index=True)
    function: Mapped[str] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(64))
    first_offset: Mapped[int] = mapped_column(BigInteger)
    last_offset: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RetrainBuffer(Base):
    """A twin's buffer policy and the fill in progress: records from ``start_offset`` on."""

    __tablename__ = "retrain_buffers"
    __table_args__ = (UniqueConstraint("twin_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey(_TWIN, ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(16))  # count | time | external
    records: Mapped[int | None] = mapped_column(BigInteger)
    seconds: Mapped[float | None] = mapped_column(Float)
    discard_after: Mapped[bool] = mapped_column(Boolean, default=True)
    exclude_quality: Mapped[str | None] = mapped_column(String(32))  # flags left out of fills, comma separated
    start_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    sealed_end: Mapped[int] = mapped_column(BigInteger, default=0)  # end of the newest fill
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))


class BufferFill(Base):
    """A sealed range of a buffer, waiting for (or consumed by) a retraining."""

    __tablename__ = "buffer_fills"

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    buffer_id: Mapped[int] = mapped_column(ForeignKey("retrain_buffers.id", ondelete="CASCADE"), index=True)
    twin_id: Mapped[str] = mapped_column(String(32))
    stream: Mapped[str] = mapped_column(String(64))
    start_offset: Mapped[int] = mapped_column(BigInteger)
    end_offset: Mapped[int] = mapped_column(BigInteger)  # exclusive
    status: Mapped[str] = mapped_column(String(16), default="ready")  # ready | consumed | discarded | failed
    reason: Mapped[str] = mapped_column(String(200))
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)


class CompactedSegment(Base):
    """A closed part of a stream written as Parquet (checksummed), for the lake to register as a dataset."""

    __tablename__ = "stream_segments"
    __table_args__ = (UniqueConstraint("twin_id", "stream", "first_offset"),)

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey(_TWIN, ondelete="CASCADE"), index=True)
    stream: Mapped[str] = mapped_column(String(64))
    first_offset: Mapped[int] = mapped_column(BigInteger)
    last_offset: Mapped[int] = mapped_column(BigInteger)
    last_entry: Mapped[int] = mapped_column(BigInteger)
    records: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    dataset_id: Mapped[str | None] = mapped_column(String(200))  # set once the lake registered it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


