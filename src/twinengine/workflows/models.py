"""Tables of the workflows package: runs with their nodes and logs, the result cache, user-defined
processes, app processes published with apps, triggers and the events that fired them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, LogId, UTCDateTime, utcnow

__all__ = ["AppProcess", "CacheEntry", "RunLog", "RunNode", "Trigger", "TriggerEvent", "UserProcess",
           "WorkflowRun"]


class WorkflowRun(Base):
    """One execution of a process graph (an openEO batch job, a sync request, or a twin workflow run)."""

    __tablename__ = "workflow_runs"
    __table_args__ = (Index("ix_workflow_runs_owner_created", "owner", "created_at"),
                      Index("ix_workflow_runs_status", "status"),
                      Index("ix_workflow_runs_graph", "graph_sha256"))  # placement sizes work by its graph

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # run, job, sync; ensemble, member (ensembles.service)
    owner: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    twin_id: Mapped[str | None] = mapped_column(ForeignKey("twins.id", ondelete="SET NULL"), index=True)
    twin_name: Mapped[str | None] = mapped_column(String(64))
    app: Mapped[str | None] = mapped_column(String(130))
    workflow: Mapped[str | None] = mapped_column(String(64))
    process: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    graph_sha256: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    options: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    trigger_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    assets: Mapped[list[dict[str, Any]]] = mapped_column(JSONValue)
    value: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # runs that ended before 0016
    # What a run used and made beyond its own columns, from 0016 on: its PROV document is rendered from these
    # facts when asked for (``provenance.provenance_of``), not built at every run's end.
    lineage: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    executor: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(120))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RunNode(Base):
    """Status, timing and attempts of one top-level node of a run."""

    __tablename__ = "workflow_run_nodes"

    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    process_id: Mapped[str] = mapped_column(String(120))
    namespace: Mapped[str | None] = mapped_column(String(130))
    status: Mapped[str] = mapped_column(String(16))  # pending, running, finished, cached, skipped, error
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float | None] = mapped_column(Float)
    cache_key: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RunLog(Base):
    __tablename__ = "workflow_run_logs"
    __table_args__ = (Index("ix_workflow_run_logs_run", "run_id", "id"),)

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    level: Mapped[str] = mapped_column(String(8))
    node_id: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)


class CacheEntry(Base):
    """A node result by content key (JSON values only; save_result entries point at kept assets)."""

    __tablename__ = "workflow_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    process_id: Mapped[str] = mapped_column(String(120))
    value: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    run_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UserProcess(Base):
    """A user-defined process (openEO ``/process_graphs``), private to its owner."""

    __tablename__ = "workflow_user_processes"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    process: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AppProcess(Base):
    """A process an app version declares with ``@app_process``, registered under the app's namespace."""

    __tablename__ = "workflow_app_processes"
    __table_args__ = (UniqueConstraint("app_name", "app_version", "process_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("app_versions.id", ondelete="CASCADE"), index=True)
    app_name: Mapped[str] = mapped_column(String(64))
    app_version: Mapped[str] = mapped_column(String(64))
    process_id: Mapped[str] = mapped_column(String(120))
    function: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONValue)


class Trigger(Base):
    """What starts runs of a twin's workflow: cron, webhook, dataset arrival, stream window, drift."""

    __tablename__ = "workflow_triggers"
    # The scheduler asks by kind for what is due (daemons/workflows_triggers.py), never for every trigger.
    __table_args__ = (UniqueConstraint("twin_id", "name"), Index("ix_workflow_triggers_due", "kind", "next_fire_at"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    twin_id: Mapped[str] = mapped_column(ForeignKey("twins.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    workflow: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    source: Mapped[str] = mapped_column(String(16))  # manifest or twin
    owner: Mapped[str] = mapped_column(String(64))
    secret_sha256: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    next_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TriggerEvent(Base):
    """One event of a trigger; unique per (trigger, key) so an event starts exactly one run."""

    __tablename__ = "workflow_trigger_events"
    __table_args__ = (UniqueConstraint("trigger_id", "event_key"),)

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    trigger_id: Mapped[str] = mapped_column(ForeignKey("workflow_triggers.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    run_id: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
