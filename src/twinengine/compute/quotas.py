"""Compute quotas: core-hours an identity or a group may use on a site (or on all, ``*``) per period.

A run whose owner has used up a quota that applies to it is refused when it is submitted (429, naming the
quota, the use and the limit), not queued: a queued run would wait, unseen, until the period turns, while a
refusal tells its owner now, who can pick another site or ask for more. Use is what ended in the current
period (calendar day, ISO week, month or year in UTC, or ever for ``total``); a run in flight counts when it
ends, so a quota can be overrun by the runs already started when it ran out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from twinengine.auth.policy import allowed, require
from twinengine.auth.principal import Principal
from twinengine.compute.models import ComputeQuota, UsageRecord
from twinengine.compute.schemas import QuotaRead, QuotaSet
from twinengine.compute.sites import get_site
from twinengine.errors import NotFound, QuotaExceeded, SiteNotFound, ValidationFailed
from twinengine.store.base import utcnow

__all__ = ["FUNCTIONS_WAIT", "check_quota", "list_quotas", "period_start", "quota_hold", "quota_read",
           "remove_quota", "set_quota", "used_core_seconds"]


def period_start(period: str, now: datetime) -> datetime | None:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "year":
        return day.replace(month=1, day=1)
    return None


def used_core_seconds(session: Session, subject: str, site: str, since: datetime | None) -> float:
    """Core-seconds ``subject`` (an identity, or ``group:<name>``) used on ``site`` (``*``: anywhere) since."""
    conditions = []
    if site != "*":
        conditions.append(UsageRecord.site == site)
    if since is not None:
        conditions.append(UsageRecord.finished_at >= since)
    if not subject.startswith("group:"):
        return float(session.scalar(select(func.coalesce(func.sum(UsageRecord.core_seconds), 0.0))
                                    .where(UsageRecord.identity == subject, *conditions)) or 0.0)
    group = subject.partition(":")[2]
    rows = session.execute(select(UsageRecord.groups, UsageRecord.core_seconds).where(*conditions))
    return float(sum(seconds for groups, seconds in rows if group in (groups or [])))


def quota_read(session: Session, row: ComputeQuota, now: datetime | None = None) -> QuotaRead:
    since = period_start(row.period, now or utcnow())
    used = used_core_seconds(session, row.subject, row.site, since)
    return QuotaRead(subject=row.subject, site=row.site, core_hours=row.core_hours, period=row.period,
                     used_core_hours=round(used / 3600, 9), period_start=since, created_by=row.created_by,
                     updated_at=row.updated_at)


def set_quota(session: Session, *, principal: Principal, spec: QuotaSet) -> ComputeQuota:
    """Set (or change) a quota; admins only (a user cannot raise their own or set another's)."""
    require(principal, "compute.quota.manage", target=f"the quota of {spec.subject}")
    if spec.site != "*":
        try:
            get_site(session, spec.site)
        except SiteNotFound:
            raise ValidationFailed.one("site", f"no compute site named {spec.site!r}") from None
    row = session.scalar(select(ComputeQuota).where(ComputeQuota.subject == spec.subject,
                                                    ComputeQuota.site == spec.site))
    if row is None:
        row = ComputeQuota(subject=spec.subject, site=spec.site, created_by=principal.name)
        session.add(row)
    row.core_hours, row.period, row.updated_at = spec.core_hours, spec.period, utcnow()
    session.flush()
    return row


def remove_quota(session: Session, *, principal: Principal, subject: str, site: str) -> None:
    require(principal, "compute.quota.manage", target=f"the quota of {subject}")
    row = session.scalar(select(ComputeQuota).where(ComputeQuota.subject == subject, ComputeQuota.site == site))
    if row is None:
        raise NotFound(f"no quota for {subject} on {site}")
    session.delete(row)
    session.flush()


def _subjects(name: str, groups: frozenset[str] | list[str]) -> list[str]:
    return [name, *(f"group:{g}" for g in sorted(groups))]


def list_quotas(session: Session, *, principal: Principal) -> list[ComputeQuota]:
    """Every quota for an admin; the caller's own and their groups' for anyone else."""
    require(principal, "compute.usage.read")
    query = select(ComputeQuota).order_by(ComputeQuota.subject, ComputeQuota.site)
    if not allowed(principal, "compute.usage.read_all"):
        query = query.where(ComputeQuota.subject.in_(_subjects(principal.name, principal.groups)))
    return list(session.scalars(query))


def check_quota(session: Session, *, identity: str, groups: frozenset[str] | list[str], site: str,
                running: float = 0.0, outcome: str = "the run is refused") -> None:
    """Refuse (QuotaExceeded) when a quota of ``identity`` or its groups on ``site`` (or ``*``) is used up.
    ``running``: core-seconds of work still in flight, not yet recorded, counted as used (a calibration checks
    itself between batches); ``outcome`` says what the refusal does, in its message."""
    quotas = session.scalars(select(ComputeQuota).where(ComputeQuota.subject.in_(_subjects(identity, groups)),
                                                        ComputeQuota.site.in_((site, "*"))))
    now = utcnow()
    for quota in quotas:
        since = period_start(quota.period, now)
        used = (used_core_seconds(session, quota.subject, quota.site, since) + running) / 3600
        if used >= quota.core_hours:
            per = "in total" if quota.period == "total" else f"per {quota.period}"
            where = "all sites" if quota.site == "*" else f"site {quota.site}"
            raise QuotaExceeded(
                f"compute quota of {quota.subject} on {where} is used up: {used:.4g} of {quota.core_hours:g} "
                f"core-hours {per}; {outcome} (an admin can raise it: twin quota set)",
                details=[{"quota": {"subject": quota.subject, "site": quota.site, "period": quota.period},
                          "used_core_hours": round(used, 6), "limit_core_hours": quota.core_hours}])


FUNCTIONS_WAIT = "its functions on arrival wait, their records kept, until the quota allows again"


def quota_hold(session: Session, *, identity: str, groups: frozenset[str] | list[str], site: str,
               running: float = 0.0, waits: str = FUNCTIONS_WAIT) -> str | None:
    """Why a twin owner's work that nobody asked for at the moment waits (``waits`` says what: functions on
    arrival, retraining policies), or None while their quotas on ``site`` allow work: nothing is refused
    (what arrived is kept, a trigger stays), the work is held, as ``check_quota`` judges a run."""
    try:
        check_quota(session, identity=identity, groups=groups, site=site, running=running, outcome=waits)
    except QuotaExceeded as exc:
        return exc.message
    return None
