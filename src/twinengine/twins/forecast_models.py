"""Tables of issued forecasts: one row per forecast (who issued it, when, with which model version) and one
per forecast value (valid time, lead, the value and, when given, members, quantiles, interval, probabilities);
and the score history: scores per period of valid time, kept as observations arrive (``twins.score_history``).

A twin's state log keeps one value per property and revision; a forecast is a series of future values of a
property, so it is kept here and matched later with the values the twin reports (``twins.forecasts``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, LogId, UTCDateTime, utcnow

__all__ = ["Forecast", "ForecastValue", "ScoreCursor", "ScoreRecord"]


class Forecast(Base):
    """A forecast a twin issued for one property: ``issued_at`` is its reference time (leads count from it)."""

    __tablename__ = "forecasts"
    __table_args__ = (Index("ix_forecasts_by_issue", "twin_id", "property", "issued_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"))
    property: Mapped[str] = mapped_column(String(64))
    workflow: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    unit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    interval_level: Mapped[float | None] = mapped_column(Float, nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    steps: Mapped[int] = mapped_column(Integer, default=0)


class ForecastValue(Base):
    """One value of a forecast; twin and property are repeated so verification reads one index range."""

    __tablename__ = "forecast_values"
    __table_args__ = (Index("ix_forecast_values_by_time", "twin_id", "property", "valid_time"),)

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    forecast_id: Mapped[str] = mapped_column(ForeignKey("forecasts.id", ondelete="CASCADE"), index=True)
    twin_id: Mapped[str] = mapped_column(String(32))
    property: Mapped[str] = mapped_column(String(64))
    valid_time: Mapped[datetime] = mapped_column(UTCDateTime())
    lead_seconds: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    members: Mapped[list[float] | None] = mapped_column(JSONValue, nullable=True)
    quantiles: Mapped[dict[str, float] | None] = mapped_column(JSONValue, nullable=True)  # "0.05" → value
    lower: Mapped[float | None] = mapped_column(Float, nullable=True)
    upper: Mapped[float | None] = mapped_column(Float, nullable=True)
    probabilities: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)  # "2.5" → P(> 2.5)


class ScoreRecord(Base):
    """The scores of one forecasting system (workflow, model version, ensemble size) at one lead over one
    period of valid time; ``""``/0 stand for none (they are part of the key)."""

    __tablename__ = "verification_scores"

    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)
    property: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(32), primary_key=True)
    members: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    scores: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ScoreCursor(Base):
    """How far a score history has looked: the twin's head revision and newest forecast when it was last
    brought up to date (what changed after those is scored again)."""

    __tablename__ = "verification_cursors"

    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), primary_key=True)
    property: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    head_revision: Mapped[int] = mapped_column(Integer)
    forecasts_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
