"""The conveyor: claims due transfers and runs them (copy, verify at the destination, retry with backoff).
The copying itself lives in ``lake.transfers``; this loop only claims and hands over."""

from __future__ import annotations

import os
import socket
import threading

from twinengine.lake.context import Lake
from twinengine.lake.transfers import claim, perform
from twinengine.store.engine import Database

__all__ = ["run_once", "worker_name"]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"[:64]


def run_once(db: Database, lake: Lake, *, limit: int = 4, worker: str | None = None) -> int:
    """Claim up to ``limit`` due transfers and run them; returns how many were attempted."""
    with db.session() as session:
        ids = claim(session, worker=worker or worker_name(), limit=limit, stale_after=lake.tuning.stale_after)
    for transfer_id in ids:
        perform(db, lake, transfer_id)
    return len(ids)
