"""Tables of calibrations: one row per calibration of a twin, and one per model run it made.

The runs are the checkpoint: an engine that stopped in the middle resumes a calibration by replaying its
kept runs (the methods are seeded, so they propose the same parameter sets again) and running only the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, UTCDateTime, utcnow

__all__ = ["Calibration", "CalibrationRun"]


class Calibration(Base):
    """A calibration of a twin's parameters: its settings, progress, result and the person's decision."""

    __tablename__ = "calibrations"
    __table_args__ = (Index("ix_calibrations_twin_created", "twin_id", "created_at"),
                      Index("ix_calibrations_status", "status"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"))
    owner: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # queued, running, done, error, canceled
    decision: Mapped[str] = mapped_column(String(16))  # pending (until done), proposed, accepted, rejected
    method: Mapped[str] = mapped_column(String(16))
    objective: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(BigInteger)
    max_runs: Mapped[int] = mapped_column(Integer)
    max_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    workers: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONValue)  # space, observed window, forcing, warm-up
    runs_done: Mapped[int] = mapped_column(Integer, default=0)
    percent: Mapped[float] = mapped_column(Float, default=0.0)
    best_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)  # summary, stopped, figure
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    fork_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the proposed twin
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)  # parameters before accept
    worker: Mapped[str | None] = mapped_column(String(120), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class CalibrationRun(Base):
    """One model run of a calibration: its parameters (in the calibration's order) and scores."""

    __tablename__ = "calibration_runs"

    calibration_id: Mapped[str] = mapped_column(ForeignKey("calibrations.id", ondelete="CASCADE"),
                                                primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    params: Mapped[list[float]] = mapped_column(JSONValue)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    log_likelihood: Mapped[float | None] = mapped_column(Float, nullable=True)
