"""Work that is not a workflow run (an assimilation request, say) accounted as runs are: refused with 429
when its owner's quota is used up, metered while it runs (the engine's share of its process's CPU, and the CPU
of the sandboxed workers it calls, read from ``/proc``), and one usage record when it ends, done or not.

Work done inside a run (an engine process of a process graph) is the run's: it is charged to the run's meter
and writes no record of its own, so nothing is counted twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from twinengine.auth.principal import Principal
from twinengine.compute.hooks import record_execution
from twinengine.compute.metering import WORKER_CPU, Meter, current_meter, start_meter
from twinengine.compute.quotas import check_quota
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.compute.usage import UsageRun

__all__ = ["Work", "admit"]


def admit(session: Session, *, principal: Principal, outcome: str, site: str = DEFAULT_SITE) -> None:
    """Refuse the work (``QuotaExceeded``, 429) when a quota of its owner or their groups on ``site`` is used
    up; ``outcome`` says what the refusal does (``the assimilation is refused``)."""
    check_quota(session, identity=principal.name, groups=principal.groups, site=site, outcome=outcome)


@dataclass
class Work:
    """One piece of work to account: what its usage record names (``run``: its id, kind, owner, groups in its
    options, twin and app)."""

    run: UsageRun
    meter: Meter | None = None
    inside: Meter | None = field(default=None, repr=False)  # the run it is done in (None: it stands alone)
    recorded: bool = False

    @classmethod
    def of(cls, kind: str, run_id: str, *, principal: Principal, twin_id: str | None, twin_name: str | None,
           app: str | None) -> Work:
        """Work of ``kind`` by ``principal`` (charged with the groups it is in now) on the engine's own site."""
        return cls(UsageRun(id=run_id[:40], kind=kind, owner=principal.name, twin_id=twin_id, twin_name=twin_name,
                            app=app, options={"site": DEFAULT_SITE, "groups": sorted(principal.groups)},
                            executor=DEFAULT_SITE))

    def charge(self, core_seconds: float) -> None:
        """CPU seconds its sandboxed workers used (callable from any thread: a worker's call on a pool's)."""
        meter = self.inside or self.meter
        if meter is not None:
            meter.charge(core_seconds, WORKER_CPU)

    @contextmanager
    def metered(self, session: Session, *, status: Callable[[], str] = lambda: "finished",
                commit: Callable[[], None] | None = None) -> Iterator[Work]:
        """Meter the body and write the record in ``session`` as it ends (``status()``), or ``error`` when it
        raised (then ``commit`` makes the record durable, as the caller's rollback would drop it)."""
        self.inside = current_meter()
        if self.inside is None:
            self.meter = start_meter()
        try:
            yield self
        except BaseException:
            self.record(session, "error")
            if commit is not None and self.meter is not None:
                with contextlib.suppress(Exception):  # the body's failure is what the caller hears of
                    commit()
            raise
        self.record(session, status())

    def record(self, session: Session, status: str) -> None:
        """Stop the meter and write the work's usage record (once; nothing inside a run)."""
        if self.recorded:
            return
        self.recorded = True
        if self.meter is not None:
            record_execution(session, self.run, self.meter, status=status, staging=False)
