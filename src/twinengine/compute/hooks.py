"""What the workflow engine calls: before a run is queued (its site and the quotas that apply) and when an
execution ends (its usage record). Kept here so the workflows package only makes the two calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.compute.metering import Meter, Reading
from twinengine.compute.models import ComputeSite
from twinengine.compute.placement import place
from twinengine.compute.quotas import check_quota
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.compute.usage import LOST, RunLike, record_usage

__all__ = ["before_queue", "record_execution", "record_lost_attempt", "requeue_check"]

Queues = Callable[[Session], dict[str, float]]  # core-seconds queued or running per site (the workflows package)


def _site_of(options: dict[str, Any]) -> str:
    return str(options.get("site") or DEFAULT_SITE)


def before_queue(session: Session, *, principal: Principal, options: dict[str, Any],
                 process: dict[str, Any] | None = None, app: str | None = None, queues: Queues | None = None,
                 outcome: str = "the run is refused") -> None:
    """Place the run on a site (``compute.placement``) or refuse it (a pinned site that cannot take it, a
    quota used up); note the site, the reasons and the owner's groups in the run's options (its provenance,
    its usage record and group quotas read them). ``queues`` sizes the runs queued or running per site (the
    queue term of placement), asked only when there is a choice to make; ``outcome`` says what a quota's
    refusal does, in its message."""
    options["groups"] = sorted(principal.groups)
    others = session.scalar(select(ComputeSite.id).where(ComputeSite.name != DEFAULT_SITE).limit(1))
    if others is None and not options.get("site") and not options.get("exclude_sites"):
        check_quota(session, identity=principal.name, groups=principal.groups, site=DEFAULT_SITE, outcome=outcome)
        options["site"] = DEFAULT_SITE  # the engine's own executor, the only site there is
        return
    placed = place(session, owner=principal.name, groups=principal.groups, options=options, process=process or {},
                   app=app, running_sites=queues(session) if queues is not None else None, outcome=outcome)
    options["site"] = placed.site
    options["placement"] = placed.to_dict()


def requeue_check(session: Session, *, owner: str, options: dict[str, Any]) -> None:
    """A run queued again (``start``) is checked like a new one."""
    check_quota(session, identity=owner, groups=list(options.get("groups") or []), site=_site_of(options))


def record_execution(session: Session, run: RunLike | None, meter: Meter, *, status: str,
                     staging: bool = True) -> Reading:
    """Stop ``meter`` and record what the execution of ``run`` used, in the transaction of its end
    (``staging``: see ``compute.usage.record_usage``)."""
    reading = meter.stop()
    if run is not None:
        site = meter.site or _site_of(run.options or {})
        if session.scalar(select(ComputeSite.id).where(ComputeSite.name == site)) is None:
            site = DEFAULT_SITE  # runs queued before the site was removed are accounted to the engine's own
        record_usage(session, run, reading, status=status, site=site, staging=staging)
    return reading


def record_lost_attempt(session: Session, run: RunLike | None, meter: Meter, *, site: str) -> Reading:
    """Stop ``meter`` and record what an attempt lost with ``site`` used (status ``lost``): usage tells what
    the lost site consumed, and quotas count it; the rerun writes the run's own record at its end."""
    reading = meter.stop()
    if run is not None:
        record_usage(session, run, reading, status=LOST, site=meter.site or site)
    return reading
