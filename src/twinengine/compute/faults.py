"""Site faults: work on a site that died or stopped answering is noticed, the site is marked down, and the
work is placed again on another site. A failed execution on a site is a site fault only when the site
then fails its probe; work waiting on a silent site is stopped within a heartbeat interval plus a probe."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.compute.heartbeats import HEARTBEAT_SECONDS
from twinengine.compute.models import ComputeSite
from twinengine.compute.placement import Placement, place
from twinengine.compute.probes import probe
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.lake.keyring import Keyring
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["WATCH_SECONDS", "SiteLost", "SiteWatch", "replace"]

WATCH_SECONDS = 5.0  # how often work waiting on a site reads the site's status


class SiteLost(ConnectionError):
    """Raised in work waiting on a site once that site is down (its probe got no answer)."""


class SiteWatch:
    """Probes sites on behalf of the work placed on them: one probe per site at a time, so the members of
    an ensemble that fail together on a lost site wait for one answer instead of sending one each."""

    def __init__(self, db: Database, keyring: Keyring | None, *, every: float = HEARTBEAT_SECONDS) -> None:
        self.db, self.keyring, self.every = db, keyring, every
        self._locks: dict[str, threading.Lock] = {}
        self._read: dict[str, float] = {}
        self._guard = threading.Lock()

    def _lock(self, site: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(site, threading.Lock())

    def lost(self, site: str, *, since: float | None = None) -> str | None:
        """Why ``site`` is down (probing it now, marking it down), or None when it answers. A probe made by
        another thread after ``since`` (a monotonic time) is taken as it is."""
        if site == DEFAULT_SITE or self.keyring is None:
            return None  # the engine's own executor: its failures are the work's own
        with self._lock(site):
            with self.db.session(readonly=True) as session:
                row = session.scalar(select(ComputeSite).where(ComputeSite.name == site))
                if row is None:
                    return f"site {site} was removed"
                if since is not None and self._read.get(site, 0.0) > since:
                    return row.health_error if row.health == "down" else None
                kind, address, options, cipher = row.kind, row.address, dict(row.options or {}), row.credential_cipher
            # probed outside any transaction: a silent site takes up to the probe's timeout, and the store's
            # writers (the members ending meanwhile) must not wait for it
            problem = probe(kind, address, options, self.keyring.open(cipher) if cipher else None)
            with self.db.session() as session:
                row = session.scalar(select(ComputeSite).where(ComputeSite.name == site))
                if row is not None:  # kept as a heartbeat keeps it
                    row.health = "down" if problem else "healthy"
                    row.health_error, row.heartbeat_at = problem, utcnow()
            self._read[site] = time.monotonic()
            return problem

    def check(self, site: str) -> None:
        """Called while work waits on ``site`` (at most every ``WATCH_SECONDS`` it reads the site): raises
        SiteLost when the site is down, and probes it when its last heartbeat is older than ``every``."""
        if site == DEFAULT_SITE or self.keyring is None:
            return
        now = time.monotonic()
        with self._guard:
            if now - self._read.get(f"watch:{site}", 0.0) < WATCH_SECONDS:
                return
            self._read[f"watch:{site}"] = now
        with self.db.session(readonly=True) as session:
            row = session.execute(select(ComputeSite.health, ComputeSite.health_error, ComputeSite.heartbeat_at)
                                  .where(ComputeSite.name == site)).first()
        if row is None:
            raise SiteLost(f"site {site} was removed")
        health, error, beat = row
        if health == "down":
            raise SiteLost(f"site {site} is down: {error or 'no answer'}")
        if beat is None or _aware(beat) < utcnow() - timedelta(seconds=self.every):
            reason = self.lost(site, since=now)
            if reason is not None:
                raise SiteLost(f"site {site} is down: {reason}")


def _aware(moment: Any) -> Any:
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def replace(session: Session, *, owner: str, groups: frozenset[str] | list[str], options: dict[str, Any],
            process: dict[str, Any], app: str | None, lost: set[str],
            running_sites: dict[str, float] | None = None) -> Placement:
    """Place work again after ``lost`` sites failed it: they are excluded, and a pin to one of them is
    dropped (the pin named a site that is gone; the work still has to run). ``running_sites``: the queue
    term (``place``). Raises ValidationFailed when no other site can take it."""
    again = {k: v for k, v in options.items() if k not in ("site", "placement")}
    if options.get("site") and options["site"] not in lost:
        again["site"] = options["site"]
    known = set(session.scalars(select(ComputeSite.name)))
    again["exclude_sites"] = sorted((set(options.get("exclude_sites") or []) | lost) & known)
    return place(session, owner=owner, groups=groups, options=again, process=process, app=app,
                 running_sites=running_sites)
