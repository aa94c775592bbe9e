"""The job list of OGC API - Processes (Part 1, Job List): the runs a caller may see, filtered as the standard's
query parameters ask (``type``, ``processID``, ``status``, ``datetime``, ``minDuration``, ``maxDuration``), newest
first, a page at a time by keyset (``after``: the last job of the previous page), never by counting or skipping
rows: one query per page (filters, durations included, are SQL), over the index ``(created_at, id)`` or
``(owner, created_at)``, whatever the number of jobs.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, and_, extract, func, literal, or_, select, type_coerce
from sqlalchemy.orm import Session, load_only

from twinengine.auth.principal import Principal
from twinengine.errors import ValidationFailed
from twinengine.processes.models import ProcessJob
from twinengine.store.base import UTCDateTime, utcnow
from twinengine.workflows import service as runs
from twinengine.workflows.models import WorkflowRun

__all__ = ["JOB_STATUSES", "JobFilter", "JobPage", "decode_after", "encode_after", "list_jobs", "parse_filter"]

# OGC status -> the engine's run statuses
JOB_STATUSES: dict[str, tuple[str, ...]] = {"accepted": ("created", "queued"), "running": ("running",),
                                            "successful": ("finished",), "failed": ("error",),
                                            "dismissed": ("canceled",)}
_TYPES = ("process",)  # every job here is a process's (openEO runs too: a process graph is a process)


@dataclass(frozen=True)
class JobFilter:
    process_ids: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None  # OGC words
    created_from: datetime | None = None
    created_to: datetime | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    none: bool = False  # a type other than process: nothing matches


@dataclass
class JobPage:
    rows: list[tuple[WorkflowRun, str | None]]  # each run with the process it executes (None: not through OGC)
    after: str | None  # the keyset of the next page, None on the last


def _words(values: list[str] | None) -> tuple[str, ...] | None:
    """Query values given repeated or comma-separated (``status=a,b`` or ``status=a&status=b``)."""
    if not values:
        return None
    found = tuple(word.strip() for value in values for word in value.split(",") if word.strip())
    return found or None


def _instant(text: str, where: str) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValidationFailed.one(where, f"an RFC 3339 date-time is required (found {text[:40]!r})") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_filter(*, types: list[str] | None = None, process_ids: list[str] | None = None,
                 statuses: list[str] | None = None, when: str | None = None, min_duration: float | None = None,
                 max_duration: float | None = None) -> JobFilter:
    """The filter of a job list request, each bad value a ``ValidationFailed`` naming its parameter."""
    wanted_types = _words(types)
    status_words = _words(statuses)
    for word in status_words or ():
        if word not in JOB_STATUSES:
            raise ValidationFailed.one("status", f"one of {', '.join(JOB_STATUSES)} is required (found {word!r})")
    start = end = None
    if when is not None:
        first, slash, second = when.partition("/")
        start = _instant(first, "datetime")
        end = _instant(second, "datetime") if slash else start
        if not slash and start is None:
            raise ValidationFailed.one("datetime", "a date-time or an interval (start/end, '..' open) is required")
        if start is not None and end is not None and end < start:
            raise ValidationFailed.one("datetime", "the interval ends before it starts")
    for name, value in (("minDuration", min_duration), ("maxDuration", max_duration)):
        if value is not None and value < 0:
            raise ValidationFailed.one(name, "a number of seconds of at least 0 is required")
    if min_duration is not None and max_duration is not None and max_duration < min_duration:
        raise ValidationFailed.one("maxDuration", "it is less than minDuration")
    return JobFilter(process_ids=_words(process_ids), statuses=status_words, created_from=start, created_to=end,
                     min_duration=min_duration, max_duration=max_duration,
                     none=wanted_types is not None and not set(wanted_types) & set(_TYPES))


def encode_after(run: WorkflowRun) -> str:
    key = f"{run.created_at.astimezone(UTC).isoformat()}|{run.id}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_after(token: str) -> tuple[datetime, str]:
    try:
        created, _, run_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition("|")
        return datetime.fromisoformat(created), run_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed.one("after", "the keyset of a page this server linked to is required") from None


def list_jobs(session: Session, *, principal: Principal, limit: int, after: str | None = None,
              where: JobFilter | None = None, offset: int = 0) -> JobPage:
    """A page of the caller's jobs (runs), newest first, after the keyset ``after``; ``offset`` (older clients)
    skips rows of the first page."""
    where = where or JobFilter()
    if where.none:
        return JobPage([], None)
    query = runs.listable(principal, select(WorkflowRun, ProcessJob.process_id)).outerjoin(
        ProcessJob, ProcessJob.run_id == WorkflowRun.id).options(load_only(
            WorkflowRun.id, WorkflowRun.status, WorkflowRun.error, WorkflowRun.progress, WorkflowRun.created_at,
            WorkflowRun.updated_at, WorkflowRun.started_at, WorkflowRun.finished_at, raiseload=True))
    if where.process_ids is not None:
        query = query.where(ProcessJob.process_id.in_(where.process_ids))
    if where.statuses is not None:
        query = query.where(WorkflowRun.status.in_([s for word in where.statuses for s in JOB_STATUSES[word]]))
    if where.created_from is not None:
        query = query.where(WorkflowRun.created_at >= where.created_from)
    if where.created_to is not None:
        query = query.where(WorkflowRun.created_at <= where.created_to)
    if where.min_duration is not None or where.max_duration is not None:
        seconds = _seconds(session, utcnow())
        query = query.where(WorkflowRun.started_at.is_not(None))
        if where.min_duration is not None:
            query = query.where(seconds >= where.min_duration)
        if where.max_duration is not None:
            query = query.where(seconds <= where.max_duration)
    if after is not None:
        created, run_id = decode_after(after)
        query = query.where(or_(WorkflowRun.created_at < created,
                                and_(WorkflowRun.created_at == created, WorkflowRun.id < run_id)))
    query = query.order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc())
    found = [(run, process_id) for run, process_id in session.execute(query.offset(offset).limit(limit + 1))]
    more = len(found) > limit
    found = found[:limit]
    return JobPage(found, encode_after(found[-1][0]) if more and found else None)


def _seconds(session: Session, now: datetime) -> Any:
    """A job's duration in SQL: seconds from its start to its end, or to now while it runs (Part 1)."""
    end = func.coalesce(WorkflowRun.finished_at, literal(now, UTCDateTime()))
    if session.get_bind().dialect.name == "sqlite":  # naive UTC text
        return (func.julianday(end, type_=Float) - func.julianday(WorkflowRun.started_at, type_=Float)) * 86400.0
    return type_coerce(extract("epoch", end - WorkflowRun.started_at), Float)
