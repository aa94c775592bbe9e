"""An ensemble's members (or its shared part) on a site that is lost under them (``compute.faults``): the
site is marked down once, the ensemble is placed again without it, its inputs are staged there, and its
unfinished members (its shared part) rerun there. The move is told in the ensemble's log, in each moved
member's log, and in both runs' placement (their provenance); a lost attempt's usage is recorded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twinengine.auth.principal import Principal
from twinengine.compute.faults import replace
from twinengine.compute.metering import Meter
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.errors import TwinEngineError
from twinengine.workflows.run_faults import lost_attempt, record_move, watching
from twinengine.workflows.site_queues import site_queues

if TYPE_CHECKING:
    from twinengine.compute.site_executors import SiteExecutors
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["MemberFaults"]

Log = Callable[[str, str], None]  # (level, message)
Progress = Callable[[int, int], None]
Restage = Callable[[str, str | None], None]  # (the new site, the member charged with what it moves)


class MemberFaults:
    """Where an ensemble's members go now, and the sites lost under them."""

    def __init__(self, engine: WorkflowEngine, ensemble_id: str, principal: Principal,
                 options: dict[str, Any]) -> None:
        self.engine, self.ensemble_id, self.principal, self.options = engine, ensemble_id, principal, options
        self.site = self.first = str(options.get("site") or DEFAULT_SITE)
        self.lost: set[str] = set()
        self.process: dict[str, Any] = {}  # the ensemble's graph: placing again reads its inputs
        self.app: str | None = None
        self.note: Log = lambda _level, _message: None  # the ensemble's log
        self.restage: Restage = lambda _site, _charge: None  # the ensemble's inputs staged near a new site
        self._moves: dict[str, tuple[str | None, str, list[str]]] = {}
        self._lock = threading.Lock()

    def _sites(self) -> SiteExecutors | None:
        return self.engine.services.get("sites")

    def watching(self, site: str, progress: Progress) -> Progress:
        """``progress`` that also stops work waiting on ``site`` once that site is down."""
        return watching(self.engine, site, progress)

    def current(self) -> str:
        """The site a member starts on now (a move under way, its staging included, is waited for)."""
        with self._lock:
            return self.site

    def lost_attempt(self, run_id: str, meter: Meter, site: str) -> None:
        """Record the usage of a member's attempt lost with ``site`` (status ``lost``)."""
        lost_attempt(self.engine, run_id, meter, site)

    def _lost(self, site: str, since: float) -> tuple[SiteExecutors, str] | None:
        """The site executors and why ``site`` was lost (probed now, unless a probe after ``since`` answered);
        None when it was not, or when runs are not placed on sites."""
        sites = self._sites()
        if sites is None or site == DEFAULT_SITE:
            return None
        reason = sites.watch.lost(site, since=since)
        return None if reason is None else (sites, reason)

    def shared_moved(self, since: float) -> str | None:
        """After the ensemble's shared part failed on its site: the site it (and every member) reruns on when
        that one was lost (probed now, unless a probe after ``since`` answered), or None."""
        site = self.site
        found = self._lost(site, since)
        if found is None:
            return None
        sites, reason = found
        with self._lock:
            if site not in self._moves:
                self._moves[site] = self._move(sites, site, reason, charge=None, shared=True)
            return self._moves[site][0]

    def starting(self, run_id: str, site: str, log: Log) -> None:
        """A member starting on a site the ensemble moved to before it began: its record says why."""
        with self._lock:
            found = [(lost, why, reasons) for lost, (new, why, reasons) in self._moves.items() if new == site]
        if found:
            lost, why, reasons = found[-1]
            log("info", f"placed on site {site}: site {lost} was lost earlier in the ensemble ({why})")
            self._record(run_id, lost, why, site, reasons, move=True)

    def moved(self, run_id: str, site: str, since: float, log: Log) -> str | None:
        """After a member failed on ``site``: the site it reruns on when ``site`` was lost (probed now,
        unless another member's probe after ``since`` answered), or None (the failure is the member's own,
        or no site can take it)."""
        found = self._lost(site, since)
        if found is None:
            return None
        sites, reason = found
        with self._lock:
            if site not in self._moves:
                self._moves[site] = self._move(sites, site, reason, charge=run_id)
            new, why, reasons = self._moves[site]
        if new is None:
            log("error", f"site {site} was lost under this member ({why}); no other site can rerun it")
            return None
        log("warning", f"site {site} was lost under this member ({why}); rerun on site {new}")
        self._record(run_id, site, why, new, reasons, move=True)
        return new

    def _move(self, sites: SiteExecutors, site: str, reason: str, *, charge: str | None,
              shared: bool = False) -> tuple[str | None, str, list[str]]:
        """Place the ensemble again without ``site`` and stage its inputs there (``charge``: the member whose
        record pays that staging; none: the first member). ``shared``: its shared part moves too."""
        self.lost.add(site)
        sites.forget(site)
        try:
            with self.engine.db.session(readonly=True) as session:
                placed = replace(session, owner=self.principal.name, groups=self.principal.groups,
                                 options=self.options, process=self.process, app=self.app, lost=set(self.lost),
                                 running_sites=site_queues(session))
        except TwinEngineError as exc:
            self.note("error", f"site {site} was lost mid-ensemble ({reason}); no other site can take its "
                               f"members: {exc.message}")
            return None, reason, []
        what = "its shared part and members rerun" if shared else "its unfinished members rerun"
        self.note("warning", f"site {site} was lost mid-ensemble ({reason}); {what} on site {placed.site}")
        self._record(self.ensemble_id, site, reason, placed.site, placed.reasons, move=shared)
        self.restage(placed.site, charge)  # before any member starts there (``current`` waits for it)
        self.site = placed.site
        return placed.site, reason, placed.reasons

    def _record(self, run_id: str, lost: str, reason: str, new: str, reasons: list[str], *, move: bool) -> None:
        """The run's placement tells the move (its provenance reads it); a member's site becomes the new one."""
        record_move(self.engine, run_id, lost, reason, new, reasons, move=move)
