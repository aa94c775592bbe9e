"""Heartbeats: each pass probes the sites whose last heartbeat is older than the interval, so a site that
stops answering is marked down (and placement steps around it) within about one interval, and one that
answers again is healthy again. A pass costs one probe per site due, and nothing when none is due."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select

from twinengine.compute.models import ComputeSite
from twinengine.compute.sites import heartbeat
from twinengine.lake.keyring import Keyring
from twinengine.store.base import utcnow
from twinengine.store.engine import Database

__all__ = ["HEARTBEAT_SECONDS", "run_once"]

HEARTBEAT_SECONDS = 30.0


def run_once(db: Database, keyring: Keyring, *, every: float = HEARTBEAT_SECONDS) -> int:
    """Probe the sites due, each outside any transaction with its answer written in a short one of its own
    (``sites.heartbeat``): a site that does not answer holds no lock and delays no other's record; returns how
    many were probed."""
    due = utcnow() - timedelta(seconds=every)
    with db.session(readonly=True) as session:
        names = list(session.scalars(select(ComputeSite.name).where(
            or_(ComputeSite.heartbeat_at.is_(None), ComputeSite.heartbeat_at < due)).order_by(ComputeSite.name)))
    for name in names:
        heartbeat(db, keyring, name)
    return len(names)
