"""Engines on several hosts share one PostgreSQL store and elect, through it, the one that runs the singleton
loops (``daemons/leadership.py``): exactly one leads; a leader killed with -9, or cut off from the store, hands
the lead to another engine; a leader whose session with the store ends stops its loops itself (fencing), so two
engines never keep running them side by side. Real PostgreSQL, real processes; the last test runs two
``twin serve`` engines with separate data dirs, as two hosts would have."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest
from pydantic import ValidationError

from helpers import free_port, serve_engine
from streams_fixtures import eventually, require_nats
from twinengine.config import Settings
from twinengine.daemons.leadership import StoreLeadership

# ci_only: engines in real processes electing through PostgreSQL, killed and cut off
pytestmark = [pytest.mark.postgres, pytest.mark.every_store, pytest.mark.ci_only]


CONTENDER = """
import sys, time
from pathlib import Path
from twinengine.daemons.leadership import StoreLeadership

url, mark = sys.argv[1], Path(sys.argv[2])

class Loops:
    def stop(self):
        pass

def start():
    mark.write_text("leading")
    return Loops()

lead = StoreLeadership(url, start, heartbeat=0.2, idle_timeout=2.0)
lead.begin()
print("waiting", flush=True)
time.sleep(600)
"""


class Loops:
    """The loops a leader runs, recording whether they were stopped."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


class Contender:
    """One engine's leadership, in this process, with the loops it started."""

    def __init__(self, url: str) -> None:
        self.started: list[Loops] = []
        self.lead = StoreLeadership(url, self._start, heartbeat=0.2, idle_timeout=2.0)

    def _start(self) -> Loops:
        self.started.append(Loops())
        return self.started[-1]

    def __enter__(self) -> Contender:
        self.lead.begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self.lead.close()


@pytest.fixture
def database(own_database: str) -> str:
    return own_database


def test_exactly_one_engine_leads_and_another_takes_over_when_it_closes(database: str) -> None:
    with Contender(database) as a, Contender(database) as b:
        eventually(lambda: a.lead.held or b.lead.held, timeout=30)
        leader, other = (a, b) if a.lead.held else (b, a)
        for _ in range(10):  # a few heartbeats later, still one leader
            assert leader.lead.held and not other.lead.held
            threading.Event().wait(0.1)
        leader.lead.close()
        assert leader.started[0].stopped.is_set()
        eventually(lambda: other.lead.held, timeout=30)
        assert not leader.lead.held


def test_a_leader_killed_with_minus_9_hands_over(database: str, tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    process = subprocess.Popen([sys.executable, "-c", CONTENDER, database, str(mark)], stdout=subprocess.PIPE)
    try:
        eventually(mark.exists, timeout=30)  # the process leads
        with Contender(database) as waiter:
            threading.Event().wait(0.6)
            assert not waiter.lead.held  # the lock is the process's
            os.kill(process.pid, signal.SIGKILL)
            eventually(lambda: waiter.lead.held, timeout=30)
            assert waiter.lead.terms == 1
    finally:
        process.kill()
        process.wait()


def test_a_leader_cut_off_from_the_store_stops_its_loops(database: str) -> None:
    """Fencing: the server ends the leader's session (as it does for a host that stopped answering). The lock
    is free at once and another engine takes it; the cut-off leader must notice and stop its own loops, or two
    engines would run them together."""
    with Contender(database) as a:
        eventually(lambda: a.lead.held, timeout=30)
        with Contender(database) as b:
            with psycopg.connect(database, autocommit=True) as admin:
                # this test's database only: engines of tests running beside it on the server hold such locks too
                ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE datname = current_database() "
                                      "AND application_name LIKE 'twinengine leadership%%' "
                                      "AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                                      "AND granted)").fetchall()
            assert ended == [(True,)]
            eventually(lambda: a.started[0].stopped.is_set(), timeout=30)
            eventually(lambda: a.lead.held or b.lead.held, timeout=30)
            for _ in range(10):
                assert a.lead.held != b.lead.held  # one leader, never two
                threading.Event().wait(0.1)


def test_sharing_the_store_needs_postgresql_and_a_shared_stream_log(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="PostgreSQL database_url"):
        Settings(data_dir=tmp_path, engines_share_store=True)
    with pytest.raises(ValidationError, match="stream_backend nats"):
        Settings(data_dir=tmp_path, engines_share_store=True, database_url="postgresql+psycopg://x@127.0.0.1/x")


def test_two_engines_with_their_own_data_dirs_hand_over_the_loops(database: str, tmp_path: Path) -> None:
    """Two ``twin serve`` engines, each with its own data dir (as on two hosts), on one store and one NATS:
    exactly one says it is primary; kill -9 it and the other is primary within the wait below."""
    nats = require_nats()
    env = {"TWIN_DATABASE_URL": database.replace("postgresql://", "postgresql+psycopg://", 1),
           "TWIN_STREAM_BACKEND": "nats", "TWIN_NATS_URL": nats, "TWIN_ENGINES_SHARE_STORE": "true"}
    ports = [free_port(), free_port()]

    def primary(port: int) -> bool:
        try:
            return bool(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json().get("primary"))
        except httpx.HTTPError:
            return False

    with serve_engine(tmp_path / "host-a", ports[0], **env) as a, \
            serve_engine(tmp_path / "host-b", ports[1], **env) as b:
        eventually(lambda: primary(ports[0]) or primary(ports[1]), timeout=60, interval=0.2)
        assert [primary(port) for port in ports].count(True) == 1
        leader, other = (a, ports[1]) if primary(ports[0]) else (b, ports[0])
        leader.send_signal(signal.SIGKILL)
        leader.wait()
        eventually(lambda: primary(other), timeout=60, interval=0.2)
