"""``/health`` checks the store without queueing behind the requests: on SQLite it takes no write lock (a
writer holding it does not delay the probe), on PostgreSQL it has connections of its own (a pool every
request has taken does not delay it); a store that cannot be reached is a 503 that says so, within a second or
two (the answer is the last check's)."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from sqlalchemy import text

from helpers import Engine
from twinengine.config import Settings
from twinengine.store.engine import Database

pytestmark = pytest.mark.every_store  # the store itself, its concurrency, or engines in several processes: both stores


def test_the_probe_answers_while_the_store_is_busy(settings: Settings) -> None:
    db = Database(settings.db_url, pool_size=1)
    busy, done = threading.Event(), threading.Event()

    def requests() -> None:  # other threads', as in a served engine (one thread never waits on its own lock)
        with contextlib.ExitStack() as held:
            if db.backend == "sqlite":
                writer = held.enter_context(db.engine.connect())
                writer.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: the write lock, held until the end
                writer.execute(text("CREATE TABLE IF NOT EXISTS probe_busy (x INTEGER)"))
            else:  # the whole pool taken: pool_size 1 + max_overflow 1
                for _ in range(2):
                    held.enter_context(db.engine.connect()).exec_driver_sql("SELECT 1")
                assert db.engine.pool.checkedout() == 2  # type: ignore[attr-defined]
            busy.set()
            done.wait(60)

    holder = threading.Thread(target=requests)
    holder.start()
    try:
        assert busy.wait(60)
        db.probe()  # would wait out the busy timeout (SQLite) or the pool's 30 s (PostgreSQL), then raise
    finally:
        done.set()
        holder.join(60)
        db.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_an_unreachable_store_is_a_503_naming_it(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine.http.get("/health").json()["database"] == "ok"
    db = engine.runtime.db
    dead = Database("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    monkeypatch.setattr(db, "probe", dead.probe)
    deadline = time.monotonic() + 15  # the answer is the last check's, at most about a second old
    answer = engine.http.get("/health")
    while answer.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = engine.http.get("/health")
    assert answer.status_code == 503 and answer.json()["status"] == "degraded"
    assert answer.json()["database"].startswith("unreachable: OperationalError")
    dead.dispose()
