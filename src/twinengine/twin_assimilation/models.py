"""The table of assimilation cycles: one row per analysis a twin's state received, with what it used.

A row keeps the analysis ensemble (the twin's ensemble: the next cycle starts from it), the observations
with their stream offsets, the innovation statistics, and the method, tuning and seed, so an analysis can
be explained and repeated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, UTCDateTime, utcnow

__all__ = ["AssimilationCycle"]


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
