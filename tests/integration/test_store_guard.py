"""No lock held across the network (``store.guard``): a thread with a write transaction open cannot call out to
the network, sleep or open a second unit of work (refused at once here, as in every test); a read-only unit
of work, another thread, and the time after the commit are free to. A compute site's heartbeat against a peer
that does not answer, and a person's first sign-in through the token exchange or the portal, hold no write
lock while they wait: another writer gets through meanwhile. A retraining pass asks the app's worker for its
drift features with no transaction open."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from helpers import Engine
from oidc_fixtures import LoopbackProvider, oidc_provider
from streams_fixtures import eventually
from twinengine.auth import audit
from twinengine.auth.models import AuditEvent, Identity
from twinengine.config import Settings
from twinengine.store import guard
from twinengine.store.engine import Database

__all__ = ["oidc_provider"]


@pytest.fixture
def db(database_url: str | None, tmp_path: Path) -> Iterator[Database]:
    database = Database(database_url or f"sqlite:///{tmp_path / 'data' / 'twin.db'}")
    with database.session() as session:
        session.execute(text("DROP TABLE IF EXISTS guarded"))
        session.execute(text("CREATE TABLE guarded (n INTEGER)"))
    yield database
    with database.session() as session:
        session.execute(text("DROP TABLE guarded"))
    database.dispose()


@pytest.fixture
def listener() -> Iterator[tuple[str, int]]:
    """A loopback port whose connections the kernel accepts and nobody answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()


def refused(call: Callable[[], Any]) -> str:
    """What the guard said when it refused ``call`` (and the violation it recorded, forgotten)."""
    with pytest.raises(guard.HeldAcrossIO) as caught:
        call()
    assert guard.violations(clear=True), "refused without a record"
    return str(caught.value)


def connect(address: tuple[str, int]) -> None:
    with socket.socket() as client:
        client.connect(address)


def second_read(db: Database) -> None:
    with db.session(readonly=True) as session:
        session.execute(text("SELECT 1"))


@pytest.mark.every_store
def test_a_write_transaction_may_not_wait_on_the_world(db: Database, listener: tuple[str, int]) -> None:
    with db.session() as session:
        session.execute(text("INSERT INTO guarded (n) VALUES (1)"))
        assert guard.holding()
        assert "a second unit of work" in refused(lambda: second_read(db))
        assert "socket connect" in refused(lambda: connect(listener))
        assert "time.sleep(0.01)" in refused(lambda: time.sleep(0.01))
        assert "a second unit of work" in refused(lambda: guard.blocking("a second unit of work (declared)"))
        elsewhere: list[bool] = []

        def another_thread() -> None:  # it holds nothing: it may
            elsewhere.append(not guard.holding())
            connect(listener)

        thread = threading.Thread(target=another_thread)
        thread.start()
        thread.join(60)
        assert elsewhere == [True]
        with db.reading() as same:  # a read the unit of work needs is made in it, not beside it
            assert same is session and same.scalar(text("SELECT count(*) FROM guarded")) == 1
    assert not guard.holding()  # the commit ends it
    connect(listener)
    time.sleep(0.01)
    second_read(db)
    assert guard.violations() == []


@pytest.mark.every_store
def test_reading_is_free_and_a_write_is_one_from_its_first_lock(db: Database, listener: tuple[str, int]) -> None:
    """SQLite: a unit of work that may write holds the file's lock from its BEGIN (IMMEDIATE); PostgreSQL:
    a transaction holds row locks from its first write (or SELECT ... FOR UPDATE)."""
    with db.session(readonly=True) as session:
        session.execute(text("SELECT count(*) FROM guarded"))
        assert not guard.holding()
        connect(listener)
        time.sleep(0.01)
        with db.session() as inner:  # a sign-in recorded while a token is verified in a read: allowed
            inner.execute(text("INSERT INTO guarded (n) VALUES (2)"))
    with db.session() as session:
        session.execute(text("SELECT count(*) FROM guarded"))
        assert guard.holding() is (db.backend == "sqlite")
        session.execute(text("SELECT n FROM guarded FOR UPDATE") if db.backend != "sqlite" else text("SELECT 1"))
        assert guard.holding()
    with db.session() as session:
        session.execute(text("SELECT 1"))
    assert not guard.holding()
    with db.reading() as read:  # no unit of work open: a read-only one of its own
        assert read.scalar(text("SELECT count(*) FROM guarded")) == 1
    assert guard.violations() == []


@pytest.mark.every_store
def test_reading_follows_the_unit_of_work_not_its_savepoints(db: Database) -> None:
    with db.session() as session:
        with session.begin_nested():
            session.execute(text("INSERT INTO guarded (n) VALUES (1)"))
        with db.reading() as same:
            assert same is session
    with db.reading() as read:  # the unit of work ended with its commit: a read of its own, nothing held after
        assert read is not session and read.scalar(text("SELECT count(*) FROM guarded")) == 1
    assert not guard.holding() and not session.in_transaction()


def test_the_stores_writer_groups_writes_without_a_second_unit(db: Database) -> None:
    if db.writer is None:
        pytest.skip("the store's one writer serves SQLite")
    def insert(n: int) -> Callable[[Any], int]:
        def work(session: Any) -> int:
            session.execute(text("INSERT INTO guarded (n) VALUES (:n)"), {"n": n})
            return n
        return work

    futures = [db.writer.submit(insert(n)) for n in range(20)]
    assert sorted(f.result(60) for f in futures) == list(range(20))
    assert guard.violations() == []


# -- a compute site that does not answer ---------------------------------------------------------------------

class Gate:
    """A loopback "scheduler" that was frozen: the kernel accepts each connection, nothing ever answers."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.address = "tcp://{}:{}".format(*self.server.getsockname())
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                self.held.append(self.server.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.server.close()
        self.thread.join(10)
        for conn in self.held:
            conn.close()


def test_a_site_that_does_not_answer_holds_no_write_lock(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the engine waits on a site, another writer of the engine writes: the probe starts that writer
    and does not end before it committed (or 60 s passed). Were the probe inside a write transaction, the
    other write could only commit after the probe ended, and the order of events would say so."""
    from twinengine.compute import probes
    from twinengine.compute.heartbeats import run_once

    asked: list[tuple[bool, str | None]] = []
    events: list[str] = []
    dask = probes.PROBES["dask"]

    def write() -> None:
        try:
            with engine.runtime.db.session() as session:
                audit.record(session, actor="other-writer", action="write", target="gate", outcome="ok")
            events.append("written")
        except Exception as error:  # the write waited for the lock and gave up: the failure asserted on
            events.append(f"refused: {error}")

    def probe(address: str | None, options: dict[str, Any], credential: dict[str, str] | None) -> str | None:
        held = guard.holding()  # what the probing thread holds while it waits on the site
        other = threading.Thread(target=write)
        other.start()
        problem = dask(address, options, credential)
        other.join(60)
        asked.append((held, problem))
        events.append("probed")
        return problem

    monkeypatch.setitem(probes.PROBES, "dask", probe)
    monkeypatch.setattr(probes, "TIMEOUT", 2.0)  # a frozen scheduler is given up after about 3 s
    gate = Gate()
    try:
        added = engine.http.post("/api/v1/compute/sites", headers=engine.headers(engine.admin_token),
                                 json={"name": "frozen", "kind": "dask", "address": gate.address, "cores": 2,
                                       "memory_bytes": 2**30})
        assert added.status_code == 201, added.text
        assert added.json()["status"] == "down" and "does not answer" in added.json()["health_error"]
        probed = engine.http.post("/api/v1/compute/sites/frozen/heartbeat",
                                  headers=engine.headers(engine.admin_token))
        assert probed.status_code == 200 and probed.json()["status"] == "down", probed.text
        assert run_once(engine.runtime.db, engine.runtime.lake.keyring, every=0) == 2  # local and frozen
    finally:
        gate.close()
    # the site was asked three times (added, asked by a provider, the heartbeat loop), each time with no
    # write transaction open, and each time another writer wrote before the probe ended
    assert [held for held, _ in asked] == [False, False, False], asked
    assert all("does not answer" in str(problem) for _, problem in asked), asked
    assert events == ["written", "probed"] * 3, events
    with engine.runtime.db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.actor == "other-writer")) == 3
    assert guard.violations() == []


# -- a search POSTed ------------------------------------------------------------------------------------------

def test_a_search_posted_for_its_body_holds_no_write_lock(engine: Engine, tmp_path: Path) -> None:
    """STAC's item search by POST only reads: a gridded item's datacube fields open its file and read its
    replicas while the search runs. Its unit of work is a read-only one (as the same search by GET), so nothing
    it opens waits while the engine's write lock is held, and the readers it calls on need no second unit."""
    import format_data as fd

    engine.as_role("pat", "provider").lake.add_endpoint("disk", "file", str(tmp_path / "disk"))
    user = engine.as_role("uma", "user")
    rain = fd.write_netcdf(tmp_path / "rain.nc")
    assert rain is not None
    user.lake.add_dataset("fx:posted", container=True, meta={"title": "Posted"})
    user.lake.add_dataset("fx:rain-nc", bbox=(7.5, 45.5, 8.75, 46.5))
    user.lake.upload(tmp_path / "rain.nc", "fx:rain-nc/rain.nc", endpoint="disk", dataset="fx:rain-nc")
    user.lake.attach("fx:posted", ["fx:rain-nc"])
    headers = engine.headers(engine.token("uma", "user"))
    found = engine.http.post("/stac/search", json={"collections": ["posted"]}, headers=headers)
    assert found.status_code == 200, found.text
    items = found.json()["features"]
    assert [i["id"] for i in items] and all("cube:dimensions" in i["properties"] for i in items), items
    assert guard.violations() == []


# -- the app's code in a retraining pass ---------------------------------------------------------------------

@pytest.mark.sandbox
def test_a_drift_check_runs_the_apps_code_with_no_write_open(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A retraining pass asks the app's worker for the drift features of the champion's records and of the
    latest ones; the pass then writes its verdict. The worker is asked with no transaction open (it runs the
    app's code, for as long as it takes), and the verdict is kept on the policy."""
    from helpers import RIVER_REACH
    from ml_fixtures import gauge_records, need_torch
    from twinengine.auth.principal import Principal, Role
    from twinengine.ml import retrain
    from twinengine.ml import service as ml_service
    from twinengine.ml.models import RetrainPolicy, TrainingRun
    from twinengine.ml.schemas import PolicyWrite
    from twinengine.store.base import utcnow
    from twinengine.twins import service as twins

    need_torch()  # the worker imports the app's model module
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    uma = Principal(name="uma", role=Role.USER)
    db = engine.runtime.db
    with db.session() as session:
        twin = twins.create_twin(session, principal=uma, app="river-reach@0.1.0", name="reach",
                                 parameters={"station": "RR-01"})
        ml_service.set_policy(session, principal=uma, twin_ref="reach", model="runoff_correction",
                              body=PolicyWrite(drift={"method": "ks"}, stream="gauges"))
        session.add(TrainingRun(id="tr-drift-champion", twin_id=twin.id, model="runoff_correction", status="succeeded",
                                model_version="1", inputs={"stream": "gauges", "start": 0, "end": 96},
                                created_by="uma", finished_at=utcnow()))
    asked: list[bool] = []
    features_of = retrain.features_of

    def features(*args: Any) -> Any:
        asked.append(guard.holding())
        return features_of(*args)

    # before the records that make the check due: the engine's own loop may run the pass first (on a loaded
    # machine it did), and every pass, its or this test's, asks through here
    monkeypatch.setattr(retrain, "features_of", features)
    engine.as_role("uma", "user").streams.append("reach", "gauges", gauge_records(48))
    engine.runtime.ml.check_policies()
    eventually(lambda: asked, timeout=60)
    assert not any(asked), asked

    def verdict() -> Any:  # the pass that asked writes it once the worker answered
        with db.session(readonly=True) as session:
            policy = session.get(RetrainPolicy, (twin.id, "runoff_correction"))
            return policy.last_check if policy is not None else None

    assert "drifted" in eventually(verdict, timeout=60)
    assert guard.violations() == []


# -- a person's first sign-in --------------------------------------------------------------------------------

@pytest.fixture
def oidc_engine(tmp_path: Path, oidc_provider: LoopbackProvider) -> Iterator[Engine]:
    from helpers import engine_on

    settings = Settings(data_dir=tmp_path / "data", warm_routes=False, oidc_providers=[oidc_provider.settings("loop")])
    with engine_on(settings) as started:
        with started.runtime.db.session() as session:
            from twinengine.lake.models import Endpoint

            session.add(Endpoint(name="site-x", protocol="file", location=str(tmp_path / "site-x"),
                                 created_by="admin"))
        yield started


def _exchange(engine: Engine, token: str) -> Any:
    from twinengine.delegation.exchange import ACCESS_TOKEN, GRANT_TYPE

    return engine.http.post("/api/v1/oauth/token", data={
        "grant_type": GRANT_TYPE, "subject_token": token, "subject_token_type": ACCESS_TOKEN,
        "audience": "lake:site-x", "scope": "lake:read"})


def _portal(engine: Engine, token: str) -> Any:
    return engine.http.post("/api/v1/session", json={"token": token})


@pytest.mark.parametrize("route", [_exchange, _portal], ids=["token-exchange", "portal-sign-in"])
def test_a_first_sign_in_is_recorded_once_beside_other_writers(oidc_engine: Engine, oidc_provider: LoopbackProvider,
                                                               route: Callable[[Engine, str], Any],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The route verifies the token (a person never seen: the sign-in is recorded) and then writes what it
    issues. While the sign-in is recorded, another writer of the engine writes: nothing waits on the other."""
    from twinengine.auth import oidc

    engine = oidc_engine
    db = engine.runtime.db
    signed_in: list[str] = []
    other: list[str] = []
    record = oidc.record_sign_in

    def record_beside_another_writer(database: Database, person: Any) -> tuple[str, frozenset[str]]:
        def write() -> None:
            try:
                with db.session() as session:
                    audit.record(session, actor="other-writer", action="write", target="sign-in", outcome="ok")
                other.append("written")
            except Exception as error:  # it waited for the lock the route held, and gave up
                other.append(f"refused: {error}")

        thread = threading.Thread(target=write)
        thread.start()
        thread.join(60)
        signed_in.append(person.subject)
        return record(database, person)

    monkeypatch.setattr(oidc, "record_sign_in", record_beside_another_writer)
    token = "oidc/loop/" + oidc_provider.device_tokens("alice")["access_token"]
    first = route(engine, token)
    assert first.status_code in (200, 201), first.text
    again = route(engine, token)  # the same token again: the sign-in is not recorded again
    assert again.status_code in (200, 201), again.text
    assert signed_in == ["alice"] and other == ["written"]
    with db.session(readonly=True) as session:
        alice = session.scalars(select(Identity).where(Identity.subject == "alice")).one()
        assert alice.name == "loop.alice" and alice.last_sign_in is not None
    assert guard.violations() == []
