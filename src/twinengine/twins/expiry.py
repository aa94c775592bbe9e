"""Twins whose time is up: a what-if run's fork carries ``expires_at`` (``what_if_ttl`` after it was made) and
is deleted then, as its owner deleting it would (its state log with it; forks of it keep their copy; its runs
stay in their owner's run history). The expiry loop (``daemons/twin_expiry.py``) calls ``expire``."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.errors import TwinNotFound
from twinengine.store.base import lock_for_delete
from twinengine.twins.models import Twin

__all__ = ["expire"]

log = logging.getLogger("twinengine.twins")


def expire(session: Session, *, now: datetime, limit: int = 100) -> int:
    """Delete at most ``limit`` twins due by ``now`` (oldest due first, read off the index of ``expires_at``);
    returns how many. One deleted meanwhile by its owner is passed over."""
    due = list(session.scalars(select(Twin).where(Twin.expires_at <= now)
                               .order_by(Twin.expires_at, Twin.id).limit(limit)))
    deleted = 0
    for twin in due:
        try:
            lock_for_delete(session, twin, TwinNotFound(twin.id))
        except TwinNotFound:
            continue
        log.info("twin %s (%s) expired at %s: deleted", twin.name, twin.id, twin.expires_at)
        session.delete(twin)
        deleted += 1
    session.flush()
    return deleted
