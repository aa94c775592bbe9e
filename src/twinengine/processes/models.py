"""Tables of OGC API - Processes: deployed processes (CWL application packages) and what an execution asked
for beyond its run (the process, the outputs and the response wanted)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from twinengine.store.base import Base, JSONValue, UTCDateTime, utcnow
from twinengine.workflows.models import WorkflowRun

__all__ = ["DeployedProcess", "ProcessJob"]

# The job list's order over every run (an admin's list): newest first, a page at a time by keyset
# (``processes.jobs``); a user's own runs are in that order by ``ix_workflow_runs_owner_created``.
Index("ix_workflow_runs_created", WorkflowRun.created_at, WorkflowRun.id)


class DeployedProcess(Base):
    """A CWL application package deployed as a process (Part 2), on its own or as a process of an app."""

    __tablename__ = "ogc_processes"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    app: Mapped[str | None] = mapped_column(String(130))  # name@version of the app it belongs to, if any
    title: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    package: Mapped[dict[str, Any]] = mapped_column(JSONValue)  # the CWL document, as deployed
    package_sha256: Mapped[str] = mapped_column(String(64))
    process: Mapped[dict[str, Any]] = mapped_column(JSONValue)  # its OGC process description
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProcessJob(Base):
    """The OGC side of a run started by an execution: which process, and the outputs and response asked for."""

    __tablename__ = "ogc_jobs"
    __table_args__ = (Index("ix_ogc_jobs_process", "process_id"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True)
    process_id: Mapped[str] = mapped_column(String(120))
    request: Mapped[dict[str, Any]] = mapped_column(JSONValue)
