"""Tables of the ml package: training runs (status, progress, metrics), retraining policies, gate decisions.

Model versions themselves live in the MLflow registry; these rows keep the engine's side of the trail
(trigger → data → run → version → decision) queryable in one join.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from twinengine.store.base import Base, JSONValue, LogId, UTCDateTime, utcnow
from twinengine.store.changes import watch

__all__ = ["POLICIES_TOPIC", "GateDecision", "RetrainPolicy", "TrainingRun", "pending_work"]

POLICIES_TOPIC = "policies"  # change counter of retraining policies (ml/policy_watch.py)

_TWIN = "twins.id"


class TrainingRun(Base):
    """One training of a twin's model: queued → running → succeeded | failed (re-queued if its process died)."""

    __tablename__ = "ml_training_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey(_TWIN, ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    nproc: Mapped[int] = mapped_column(Integer, default=1)
    config: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    history: Mapped[list[dict[str, float]]] = mapped_column(JSONValue, default=list)
    metrics: Mapped[dict[str, float]] = mapped_column(JSONValue, default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    site: Mapped[str | None] = mapped_column(String(64), nullable=True)  # where it trains (compute.placement)
    placement: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)  # why, and moves
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RetrainPolicy(Base):
    """When to retrain a twin's model: every ``every_seconds``, on a sealed buffer fill, on drift, or on request."""

    __tablename__ = "ml_retrain_policies"

    twin_id: Mapped[str] = mapped_column(ForeignKey(_TWIN, ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    every_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    buffer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    drift: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    skill: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)  # verified skill rule
    stream: Mapped[str | None] = mapped_column(String(64), nullable=True)
    window: Mapped[int] = mapped_column(Integer, default=500)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_check: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


watch(RetrainPolicy, POLICIES_TOPIC, lambda policy: f"{policy.twin_id}/{policy.model}")


class GateDecision(Base):
    """The gate's verdict on a model version, with its reason (rejected versions stay in the registry)."""

    __tablename__ = "ml_gate_decisions"

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey(_TWIN, ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str] = mapped_column(ForeignKey("ml_training_runs.id", ondelete="CASCADE"), index=True)
    accepted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, float]] = mapped_column(JSONValue, default=dict)
    champion_before: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def pending_work(session: Session) -> bool:
    """Runs to resume or policies to watch (checked on start without importing torch)."""
    run = session.scalar(select(TrainingRun.id).where(TrainingRun.status.in_(("queued", "running"))).limit(1))
    policy = session.scalar(select(RetrainPolicy.model).where(RetrainPolicy.enabled.is_(True)).limit(1))
    return run is not None or policy is not None
