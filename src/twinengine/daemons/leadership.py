"""Which engine of several hosts runs the elected loops: a leader elected through the shared PostgreSQL store.

``PrimaryDuties`` (``daemons/primary.py``) elects one process of a data dir with a file lock; engines on other
hosts share no data dir, only the store. ``StoreLeadership`` takes a PostgreSQL *session* advisory lock on a
connection of its own instead. The server releases it the moment that session ends, which it does when the
leader's process dies (kill -9 included: the kernel closes the socket), when the leader's host stops answering
(the session is idle between heartbeats for longer than ``idle_session_timeout``, and TCP keepalives are short)
or when an operator terminates the session. Advisory locks are per database, so engines of another database on
the same server never contend.

Fencing: the leader sends a heartbeat on its lock's session every ``heartbeat`` seconds. When one fails, the lock
may already be another engine's, so the leader stops its loops before anything else and then waits for the lock
again like any other engine. Waiters try the lock every ``heartbeat`` seconds, so a dead leader's loops run
elsewhere within a heartbeat of the server noticing (at once for a killed process; about
``idle_session_timeout`` for a host that vanished).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from twinengine.daemons.primary import Stoppable

__all__ = ["LEADER_LOCK_NAME", "StoreLeadership", "lock_key"]

log = logging.getLogger("twinengine.daemons")

LEADER_LOCK_NAME = "twinengine.singleton-loops"


def lock_key(name: str = LEADER_LOCK_NAME) -> int:
    """The advisory lock's 64-bit key for ``name`` (a stable signed integer, as PostgreSQL's bigint wants)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _psycopg_url(url: str) -> str:
    """A plain libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` → ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgresql") else url


class StoreLeadership:
    """Waits on a thread of its own until this engine leads; then calls ``start`` (which starts the singleton
    loops) and keeps the lead with heartbeats. ``close`` stops the loops and lets the lead go.

    Same surface as ``PrimaryDuties``: ``begin``, ``close``, ``held``, ``acquired`` and ``loops``."""

    def __init__(self, database_url: str, start: Callable[[], Stoppable], *, heartbeat: float = 1.0,
                 idle_timeout: float = 8.0, name: str = LEADER_LOCK_NAME) -> None:
        if heartbeat <= 0 or idle_timeout <= 2 * heartbeat:
            raise ValueError("idle_timeout must exceed two heartbeats, or a live leader would lose its session")
        self.url = _psycopg_url(database_url)
        self.key = lock_key(name)
        self.heartbeat, self.idle_timeout = heartbeat, idle_timeout
        self._start = start
        self.loops: Stoppable | None = None
        self._closed = threading.Event()
        self._state = threading.Lock()  # held only to start or stop the loops, never while waiting
        self.acquired = threading.Event()  # set while this engine leads
        self.terms = 0  # how many times this engine took the lead (a lost and retaken lead counts twice)
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self.acquired.is_set() and not self._closed.is_set()

    def begin(self) -> None:
        self._thread = threading.Thread(target=self._run, name="twin-leadership", daemon=True)
        self._thread.start()

    def _connect(self) -> Any:
        import psycopg

        timeout_ms = int(self.idle_timeout * 1000)
        keepalive = max(1, int(self.heartbeat))
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(2, int(self.idle_timeout)),
                               application_name=f"twinengine leadership {self.identity}"[:63],
                               keepalives=1, keepalives_idle=keepalive, keepalives_interval=keepalive,
                               keepalives_count=3, tcp_user_timeout=int(self.idle_timeout * 500))
        # A heartbeat the network swallows fails within half the idle timeout (tcp_user_timeout), so a cut-off
        # leader stops its loops before the server frees the lock for another engine.
        # The server ends a session idle this long (a leader whose host vanished sends no more heartbeats) and
        # probes the peer with short keepalives: either way the lock is freed for another engine.
        conn.execute(f"SET idle_session_timeout = {timeout_ms}")
        conn.execute(f"SET tcp_keepalives_idle = {keepalive}")
        conn.execute(f"SET tcp_keepalives_interval = {keepalive}")
        conn.execute("SET tcp_keepalives_count = 3")
        return conn

    def _run(self) -> None:
        while not self._closed.is_set():
            conn = None
            try:
                conn = self._connect()
                while not self._closed.is_set():
                    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                    if row and row[0]:
                        break
                    self._closed.wait(self.heartbeat)
                else:
                    return
                self._lead(conn)
            except Exception as exc:  # the store went away, or the session was ended: wait and try again
                if not self._closed.is_set():
                    log.warning("leadership of the elected loops: %s; trying again in %.1f s", exc, self.heartbeat)
            finally:
                self._stop_loops()
                if conn is not None:
                    with contextlib.suppress(Exception):  # the connection may already be gone
                        conn.close()  # ends the session: the server frees the lock
            self._closed.wait(self.heartbeat)

    def _lead(self, conn: Any) -> None:
        """Start the loops and hold the lead until a heartbeat fails (raises) or ``close``."""
        with self._state:
            if self._closed.is_set():
                return
            self.terms += 1
            log.info("engine %s leads: it runs the elected loops", self.identity)
            try:
                self.loops = self._start()
            except Exception:
                log.exception("the elected loops did not start in engine %s", self.identity)
            self.acquired.set()
        while not self._closed.wait(self.heartbeat):
            # Raises when the session is gone; then the lock may be another engine's already (fencing).
            conn.execute("SELECT 1").fetchone()

    def _stop_loops(self) -> None:
        with self._state:
            loops, self.loops = self.loops, None
            was_leading = self.acquired.is_set()
            self.acquired.clear()
        if loops is not None:
            loops.stop()
        if was_leading and not self._closed.is_set():
            log.warning("engine %s lost the lead (its session with the store ended): its elected loops stopped",
                        self.identity)

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=self.idle_timeout + 30)
        self._stop_loops()
