"""The table of assimilation cycles: one row per analysis a twin's state received, with what it used.

A row keeps the analysis ensemble (the twin's ensemble: the next cycle starts from it), the observations
with their stream offsets, the innovation statistics, and the method, tuning and seed, so an analysis can
be explained and repeated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, UTCDateTime, utcnow

__all__ = ["AssimilationCycle", "AssimilationSchedule"]


class AssimilationCycle(Base):
    """One analysis of a twin's state: ``number`` counts the twin's cycles from 1."""

    __tablename__ = "assimilation_cycles"
    __table_args__ = (Index("ix_assimilation_cycles_by_twin", "twin_id", "number", unique=True),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(16))
    members: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    tuning: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    valid_time: Mapped[datetime] = mapped_column(UTCDateTime())
    offsets: Mapped[dict[str, Any]] = mapped_column(JSONValue)  # stream → [first, end) offsets read
    observations: Mapped[list[dict[str, Any]]] = mapped_column(JSONValue)  # name, stream, offset, value, std
    innovations: Mapped[dict[str, Any]] = mapped_column(JSONValue)  # name → obs, background, innovation, expected
    obs_count: Mapped[int] = mapped_column(Integer)
    innovation_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    innovation_rms: Mapped[float | None] = mapped_column(Float, nullable=True)
    expected_rms: Mapped[float | None] = mapped_column(Float, nullable=True)
    spread: Mapped[float] = mapped_column(Float)  # mean analysis std over the state vector
    ensemble: Mapped[dict[str, Any]] = mapped_column(JSONValue)  # names, members (N x n), weights, forcing
    revision: Mapped[int] = mapped_column(Integer)
    origin_cycle: Mapped[str | None] = mapped_column(String(32), nullable=True)  # a fork's start
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AssimilationSchedule(Base):
    """A twin whose cycles run by themselves (``assimilation.run`` of its app, or set for the twin): where the
    loop stands (``seen_end``: the stream offset its last pass read up to), who holds it (a claim with a lease,
    so two engine processes never run the same cycles), and how its last pass ended."""

    __tablename__ = "assimilation_schedules"
    __table_args__ = (Index("ix_assimilation_schedules_due", "enabled", "next_due_at"),)

    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)
    run_on: Mapped[str] = mapped_column(String(16))  # arrival | schedule
    every_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # manifest | twin
    owner: Mapped[str] = mapped_column(String(128))  # the identity the cycles run as
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # not before then
    seen_end: Mapped[int] = mapped_column(BigInteger, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_cycles: Mapped[int] = mapped_column(Integer, default=0)  # cycles the last pass ran
    failures: Mapped[int] = mapped_column(Integer, default=0)  # passes failed in a row
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
