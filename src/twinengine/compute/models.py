"""Tables of federated compute: the sites providers register, what every run used, and compute quotas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, LogId, UTCDateTime, utcnow

__all__ = ["ComputeQuota", "ComputeSite", "UsageRecord"]


class ComputeSite(Base):
    """Where runs execute: local processes, a Dask cluster, Slurm, or another engine; its capacity, the
    environments it runs, the lake endpoints near it, an encrypted credential and its health from heartbeats."""

    __tablename__ = "compute_sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(1024))
    options: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    cores: Mapped[int] = mapped_column(Integer)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    environments: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    endpoints: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    credential_kind: Mapped[str | None] = mapped_column(String(16))
    credential_cipher: Mapped[str | None] = mapped_column(Text)
    health: Mapped[str] = mapped_column(String(16), default="healthy")  # from the last heartbeat
    draining: Mapped[bool] = mapped_column(Boolean, default=False)  # set by its provider: takes no new runs
    health_error: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def status(self) -> str:
        """healthy, draining or down: a site that does not answer is down whether or not it drains."""
        if self.health == "down":
            return "down"
        return "draining" if self.draining else "healthy"


class UsageRecord(Base):
    """What one execution of a run (a workflow run, an ensemble member) used, per identity, twin, app, site."""

    __tablename__ = "compute_usage"
    __table_args__ = (Index("ix_compute_usage_identity_finished", "identity", "finished_at"),
                      Index("ix_compute_usage_site_finished", "site", "finished_at"))

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    identity: Mapped[str] = mapped_column(String(64))
    groups: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    twin_id: Mapped[str | None] = mapped_column(String(40))
    twin_name: Mapped[str | None] = mapped_column(String(64))
    app: Mapped[str | None] = mapped_column(String(130))
    site: Mapped[str] = mapped_column(String(64))
    executor: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    wall_seconds: Mapped[float] = mapped_column(Float)
    core_seconds: Mapped[float] = mapped_column(Float)
    remote_core_seconds: Mapped[float] = mapped_column(Float, default=0.0)  # of it, on the executor's workers
    cores: Mapped[int] = mapped_column(Integer, default=1)
    peak_memory_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_written: Mapped[int] = mapped_column(BigInteger, default=0)
    # copied between lake endpoints by the transfers the run's staging made (compute.staging)
    bytes_transferred: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bytes_stored: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # its outputs in the lake
    # GPUs its sandboxed workers held a context on x the seconds of the calls that held them (workers.gpu)
    gpu_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    source: Mapped[str] = mapped_column(String(64))  # where the figures come from: rusage, task-stream, sacct


class ComputeQuota(Base):
    """Core-hours an identity (or ``group:<name>``) may use on a site (``*``: all sites) per period."""

    __tablename__ = "compute_quotas"
    __table_args__ = (UniqueConstraint("subject", "site"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(80))
    site: Mapped[str] = mapped_column(String(64))
    core_hours: Mapped[float] = mapped_column(Float)
    period: Mapped[str] = mapped_column(String(8))  # day, week, month, year, total
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
