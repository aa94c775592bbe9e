"""The assimilation loop: runs the pending cycles of twins whose assimilation runs by themselves.

An elected loop (``daemons/supervisor.py``), and safe when two engines run it at once: every pass over a twin
claims its row in the store first (``twin_assimilation.auto``). Its cost follows what changed: the stream
hub says which streams grew since the last pass (``appended_since``), an indexed query which schedules are
due; only the arrival twins whose observed stream grew past their ``seen_end`` are looked at, and once on
start every arrival twin (records that came while no engine ran). Woken by the runtime's notifier.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.catalog import service as catalog
from twinengine.daemons.supervisor import Loop, Scope
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.streams.hub import StreamHub
from twinengine.streams.notify import Notifier
from twinengine.twin_assimilation import auto
from twinengine.twin_assimilation.models import AssimilationSchedule
from twinengine.twin_assimilation.service import Engines
from twinengine.twins.models import Twin

__all__ = ["AssimilationLoop"]

log = logging.getLogger("twinengine.daemons")

INTERVAL_SECONDS = 2.0  # the longest sleep: scheduled ticks and retries are seen within it
MIN_GAP_S = 0.1


def _declares_run(session: Session, app_id: int) -> bool:
    spec = catalog.manifest_by_id(session, app_id).assimilation
    return spec is not None and spec.run is not None


class AssimilationLoop:
    """``run_once`` finds the twins with work and runs them; ``loop`` is what the supervisor runs."""

    def __init__(self, db: Database, hub: Callable[[], StreamHub], engines: Callable[[], Engines],
                 notifier: Notifier | None = None, *, worker: str | None = None) -> None:
        self.db, self._hub, self._engines, self.notifier = db, hub, engines, notifier
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()
        self._appends = 0
        self._swept = False
        self._waiting: set[str] = set()  # arrival twins with news this loop could not claim yet
        self._keys: dict[str, str | None] = {}  # twin id -> observed stream key
        self.passes: list[auto.Pass] = []  # the last pass's results (tests and logs read them)

    def _key(self, twin_id: str) -> str | None:
        if twin_id not in self._keys:
            with self.db.session(readonly=True) as session:
                twin = session.get(Twin, twin_id)
                self._keys[twin_id] = auto.observed_key(session, twin) if twin is not None else None
        return self._keys[twin_id]

    def sweep(self) -> int:
        """Schedule rows for twins created before their app declared ``run`` or before this engine had the
        hook (once, on start); only twins without a row are looked at."""
        with self.db.session() as session:
            apps = [a for a in session.scalars(select(Twin.app_id).distinct()) if _declares_run(session, a)]
            if not apps:
                return 0
            bare = session.scalars(select(Twin).where(Twin.app_id.in_(apps), Twin.origin_id.is_(None), ~select(
                AssimilationSchedule.twin_id).where(AssimilationSchedule.twin_id == Twin.id).exists()))
            return sum(auto.materialize(session, twin) for twin in bare)

    def _candidates(self) -> tuple[dict[str, int], list[str]]:
        """(arrival twins with records past their ``seen_end`` -> the stream's end, scheduled twins due)."""
        hub = self._hub()
        if not self._swept:
            _, self._appends = hub.appended_since(self._appends)
            self.sweep()
            self._swept, ids = True, None  # every arrival twin, once
        else:
            keys, self._appends = hub.appended_since(self._appends)
            ids = {key.split("/", 1)[0] for key in keys} | self._waiting
        with self.db.session(readonly=True) as session:
            rows = auto.arrival_rows(session, ids) if ids is None or ids else []
            seen = {row.twin_id: row.seen_end for row in rows}
            due = auto.due_schedules(session, utcnow())
        news: dict[str, int] = {}
        for twin_id, seen_end in seen.items():
            key = self._key(twin_id)
            end = hub.end(key) if key is not None else 0
            if end > seen_end:
                news[twin_id] = end
        self._waiting &= set(news)
        return news, due

    def run_once(self) -> int:
        """One pass; returns the cycles run."""
        news, due = self._candidates()
        engines = self._engines()
        self.passes = []
        for twin_id, end in sorted(news.items()):
            done = auto.run_pending(self.db, engines, twin_id, worker=self.worker, stopping=self.stopping, end=end)
            if done is None:
                self._waiting.add(twin_id)  # held by another engine, or throttled by ``every``: look again
            else:
                self._waiting.discard(twin_id)
                self.passes.append(done)
        for twin_id in sorted(set(due) - set(news)):
            done = auto.run_pending(self.db, engines, twin_id, worker=self.worker, stopping=self.stopping)
            if done is not None:
                self.passes.append(done)
        return sum(p.cycles for p in self.passes)

    def loop(self) -> Loop:
        """Runs ``run_once`` after news (the runtime's notifier), at most every ``MIN_GAP_S``, at least every
        ``INTERVAL_SECONDS``; stopping it stops the cycles in progress (``stopping``)."""
        seen = self.notifier.version if self.notifier is not None else 0

        def setup() -> None:
            self.stopping.clear()
            self._swept = False  # a new term: every arrival twin once again

        def wait(stop: threading.Event) -> None:
            nonlocal seen
            if stop.wait(MIN_GAP_S):
                return
            if self.notifier is not None:
                seen = self.notifier.wait_any(seen, INTERVAL_SECONDS)
            else:
                stop.wait(INTERVAL_SECONDS)

        def interrupt() -> None:
            self.stopping.set()
            if self.notifier is not None:
                self.notifier.notify("assimilation:stop")

        return Loop("assimilation", self.run_once, scope=Scope.ELECTED, interval=INTERVAL_SECONDS, wait=wait,
                    setup=setup, interrupt=interrupt)
