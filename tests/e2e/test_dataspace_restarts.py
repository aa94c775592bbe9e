"""Either side of the data space killed (``kill -9``, the whole engine's process group) and started again on its
data dir: mid-negotiation while a message waits for it or in it, mid-transfer while the consumer pulls or the
provider pushes, and while a live stream's new part is taken and pushed. Each
process then ends in the same final state on both sides (resumed to FINALIZED and COMPLETED, or TERMINATED on
both), nothing owed is left behind, and nothing is transferred twice: the provider counts one transfer under the
agreement and has one transfer process, the consumer's lake holds one copy of each file, with the provider's
SHA-256."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import select

from helpers import admin_token, free_port, serve_engine
from streams_fixtures import eventually
from twinengine.config import Settings
from twinengine.store.engine import Database

BIG = 96 * 1024 * 1024  # big enough that a pull is under way for a while on loopback
FINAL = {"FINALIZED", "TERMINATED", "COMPLETED"}
# ci_only: the consumer killed, in each of the four moments (the provider's variants run everywhere)
KILLED = ["provider", pytest.param("consumer", marks=pytest.mark.ci_only)]


@dataclass
class Side:
    """One engine as a real ``twin serve`` process on a fixed port (its did:web must not change), which the test
    kills and starts again on the same data dir."""

    root: Path
    port: int = field(default_factory=free_port)
    stack: ExitStack = field(default_factory=ExitStack)
    process: Any = None
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.stack = ExitStack()
        self.process = self.stack.enter_context(serve_engine(
            self.root, self.port, preexec=os.setsid, TWIN_DATASPACE_URL=self.url,
            TWIN_DATASPACE_PEER_HOSTS="127.0.0.1", TWIN_WARM_ROUTES="false",
            # a killed side's claims expire after 11 s, not 35; its lake reservations are stale after 20 s, not 120
            TWIN_DATASPACE_MESSAGE_TIMEOUT="3", TWIN_LAKE_STALE_AFTER="20",
            TWIN_DATASPACE_LIVE_INTERVAL="0.5"))  # a live stream's parts, this often
        self.token = self.token or admin_token(Settings(data_dir=self.root))

    def kill(self) -> None:
        """``kill -9`` of the engine and every process it started; nothing of it runs on."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.stack.close()

    def stop(self) -> None:
        self.stack.close()

    def api(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {self.token}"},
                                 timeout=120, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def db(self) -> Database:
        return Database(Settings(data_dir=self.root).db_url)


@pytest.fixture
def sides(tmp_path: Path) -> Iterator[tuple[Side, Side]]:
    provider, consumer = Side(tmp_path / "provider"), Side(tmp_path / "consumer")
    try:
        for side in (provider, consumer):
            side.start()
            side.api("POST", "/api/v1/lake/endpoints", expect=201, json={
                "name": "site", "protocol": "file", "location": str(side.root / "lake" / "site")})
        yield provider, consumer
    finally:
        for side in (consumer, provider):
            side.stop()


def _gauges(provider: Side, big: bool, manual: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """A dataset of two files on the provider (one of ``BIG`` bytes when ``big``), offered to everyone."""
    provider.api("POST", "/api/v1/lake/dids", expect=201, json={"did": "reach:gauges", "type": "dataset"})
    files = {"rain.csv": b"time,rain\n2026-03-01T00:00:00Z,0.4\n",
             "levels.bin": os.urandom(BIG if big else 64 * 1024)}
    for name, data in files.items():
        provider.api("POST", "/api/v1/lake/uploads", expect=201, content=data, params={
            "did": f"reach:gauges/{name}", "endpoint": "site", "dataset": "reach:gauges"})
    offer = provider.api("POST", "/api/v1/dataspace/offers", expect=201, json={
        "did": "reach:gauges", "title": "Gauges", "manual": manual})
    return offer, {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def _negotiate(consumer: Side, provider: Side, offer: dict[str, Any], fmt: str = "HttpData-PULL") -> dict[str, Any]:
    made: dict[str, Any] = consumer.api("POST", "/api/v1/dataspace/negotiations", expect=201, json={
        "url": provider.url, "dataset": offer["dataset_id"], "land": {"did": "remote:gauges", "format": fmt}})
    return made


def _settled(side: Side, kind: str, role: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Every process of ``kind`` in ``role`` once each is final and owes nothing."""
    def done() -> Any:
        rows = side.api("GET", f"/api/v1/dataspace/{kind}?role={role}")
        return rows if rows and all(r["state"] in FINAL and not r["pending"] for r in rows) else None

    found: list[dict[str, Any]] = eventually(done, timeout=timeout, interval=0.5)
    return found


def _check_outcome(provider: Side, consumer: Side, sums: dict[str, str]) -> str:
    """Both sides agree on each process; what completed was transferred once. Returns the transfer's state (and
    why, when it was terminated)."""
    mine = _settled(consumer, "negotiations", "consumer")
    theirs = _settled(provider, "negotiations", "provider")
    assert len(mine) == 1 and len(theirs) == 1, (mine, theirs)
    assert mine[0]["state"] == theirs[0]["state"], (mine, theirs)
    if mine[0]["state"] == "TERMINATED":
        assert not consumer.api("GET", "/api/v1/dataspace/transfers?role=consumer")
        return "TERMINATED"
    agreement = mine[0]["agreement_id"]
    pulled = _settled(consumer, "transfers", "consumer")
    served = _settled(provider, "transfers", "provider")
    assert len(pulled) == 1 and len(served) == 1, (pulled, served)  # one transfer on each side, no second one
    assert pulled[0]["state"] == served[0]["state"], (pulled, served)
    assert provider.api("GET", f"/api/v1/dataspace/agreements/{agreement}")["transfers"] == 1
    usage = provider.api("GET", f"/api/v1/dataspace/agreements/{agreement}/accesses")
    assert {a["transfer_id"] for a in usage} <= {served[0]["id"]}
    if pulled[0]["state"] == "COMPLETED":
        assert {f["name"]: f["sha256"] for f in pulled[0]["files"]} == sums
        dataset = consumer.api("GET", "/api/v1/lake/dids/remote:gauges")
        assert sorted(dataset["children"]) == sorted(f"remote:gauges/{name}" for name in sums), dataset
        for name, digest in sums.items():
            did = consumer.api("GET", f"/api/v1/lake/dids/remote:gauges/{name}")
            assert did["sha256"] == digest
            assert len(did["replicas"]) == 1, did["replicas"]  # one copy in the consumer's lake
            data = httpx.get(f"{consumer.url}/api/v1/lake/dids/remote:gauges/{name}/content",
                             headers={"Authorization": f"Bearer {consumer.token}"}, timeout=120).content
            assert hashlib.sha256(data).hexdigest() == digest
        return "COMPLETED"
    assert pulled[0]["state"] == "TERMINATED", pulled
    return f"TERMINATED ({pulled[0]['error']})"


def _pull_under_way(consumer: Side) -> None:
    """Until the consumer writes the big file into its lake (its replica reserved, the bytes coming in), pulled
    or pushed."""
    from twinengine.lake.models import Did, Replica

    db = consumer.db()
    try:
        def begun() -> bool:
            with db.session(readonly=True) as session:
                return session.scalar(select(Replica.id).join(Did, Did.id == Replica.did_id).where(
                    Did.scope == "remote", Did.name == "gauges/levels.bin", Replica.state == "COPYING")) is not None

        eventually(begun, timeout=120, interval=0.02)
    finally:
        db.dispose()


@pytest.mark.parametrize("killed", KILLED)
def test_killed_while_a_negotiation_message_waits(sides: tuple[Side, Side], killed: str) -> None:
    """The other side is down while a message waits to be delivered to it (retried); then the side that owes it is
    killed as well, and both come back. The provider's agreement: the negotiation resumes to FINALIZED and the
    transfer that follows completes once. The consumer's termination: both sides end TERMINATED."""
    provider, consumer = sides
    offer, sums = _gauges(provider, big=False, manual=True)
    made = _negotiate(consumer, provider, offer)
    eventually(lambda: consumer.api("GET", f"/api/v1/dataspace/negotiations/{made['id']}")["state"] == "REQUESTED")
    theirs = provider.api("GET", "/api/v1/dataspace/negotiations?role=provider")[0]
    receiver, sender = (consumer, provider) if killed == "consumer" else (provider, consumer)
    receiver.kill()
    if sender is provider:  # the steward agrees while the consumer is down: the agreement waits
        provider.api("POST", f"/api/v1/dataspace/negotiations/{theirs['id']}/agree")
        owed = (provider, "negotiations", theirs["id"], "agree")
    else:  # the consumer ends it while the provider is down: the termination waits
        consumer.api("POST", f"/api/v1/dataspace/negotiations/{made['id']}/terminate")
        owed = (consumer, "negotiations", made["id"], "terminate")
    side, kind, row, action = owed
    eventually(lambda: side.api("GET", f"/api/v1/dataspace/{kind}/{row}")["error"])  # a try failed
    assert side.api("GET", f"/api/v1/dataspace/{kind}/{row}")["pending"] == action
    sender.kill()  # with the message still owed
    receiver.start()
    sender.start()
    if sender is provider:
        eventually(lambda: provider.api("GET", f"/api/v1/dataspace/negotiations/{theirs['id']}")["state"]
                   == "VERIFIED", timeout=120)
        provider.api("POST", f"/api/v1/dataspace/negotiations/{theirs['id']}/finalize")
        transfer = eventually(lambda: provider.api("GET", "/api/v1/dataspace/transfers?role=provider"), timeout=120)
        provider.api("POST", f"/api/v1/dataspace/transfers/{transfer[0]['id']}/start")
        assert _check_outcome(provider, consumer, sums) == "COMPLETED"
    else:
        assert _check_outcome(provider, consumer, sums) == "TERMINATED"


@pytest.mark.parametrize("killed", KILLED)
def test_killed_while_the_consumer_pulls(sides: tuple[Side, Side], killed: str) -> None:
    """kill -9 of either side while the consumer pulls a large file, then a start on the same data dir: the
    transfer ends the same on both sides, and what completed was transferred once."""
    provider, consumer = sides
    offer, sums = _gauges(provider, big=True)
    _negotiate(consumer, provider, offer)
    _pull_under_way(consumer)
    side = provider if killed == "provider" else consumer
    side.kill()
    time.sleep(1)
    side.start()
    assert _check_outcome(provider, consumer, sums) == "COMPLETED"  # resumed, not ended


@pytest.mark.parametrize("killed", KILLED)
def test_killed_while_the_provider_pushes(sides: tuple[Side, Side], killed: str) -> None:
    """The same for HttpData-PUSH: kill -9 of either side while the provider pushes the large file into the
    consumer's lake. The provider pushes again once its claim has expired (the consumer's half-written file is
    handed over once stale): the transfer completes once, each file landed once with the provider's SHA-256."""
    provider, consumer = sides
    offer, sums = _gauges(provider, big=True)
    _negotiate(consumer, provider, offer, "HttpData-PUSH")
    _pull_under_way(consumer)  # the pushed file being written into the consumer's lake
    side = provider if killed == "provider" else consumer
    side.kill()
    time.sleep(1)
    side.start()
    assert _check_outcome(provider, consumer, sums) == "COMPLETED"
    pushed = consumer.api("GET", "/api/v1/dataspace/transfers?role=consumer")
    assert [t["format"] for t in pushed] == ["HttpData-PUSH"]


def _readings(start: int, count: int) -> list[dict[str, Any]]:
    return [{"time": f"2026-03-01T{(start + i) // 4:02d}:{(start + i) % 4 * 15:02d}:00Z", "station": "RR-01",
             "rain": 0.1, "level": round(1.0 + 0.01 * (start + i), 2)} for i in range(count)]


def _parts(consumer: Side, transfer: int, records: int) -> list[tuple[int, int, str]]:
    """The live transfer's parts landed on the consumer once they hold ``records`` readings: (start, end, name)
    from their names, in order."""
    import re

    def landed() -> Any:
        files = consumer.api("GET", f"/api/v1/dataspace/transfers/{transfer}")["files"] or []
        found = sorted((int(m[1]), int(m[2]), f["name"]) for f in files if f.get("landed")
                       and (m := re.search(r"-(\d{12})-(\d{12})\.arrow$", f["name"])))
        return found if found and found[-1][1] >= records else None

    parts: list[tuple[int, int, str]] = eventually(landed, timeout=120, interval=0.3)
    return parts


@pytest.mark.parametrize("killed", KILLED)
def test_killed_while_a_live_stream_is_pushed(sides: tuple[Side, Side], killed: str) -> None:
    """kill -9 of either side of a live stream's transfer just after new readings arrived (before, while or
    after their part is taken and pushed: the moment is not steered), then a start on the same data dir: the
    parts go on from where they stopped, and every reading reaches the consumer's lake once: parts follow each
    other with no gap or repeat, each with the SHA-256 the provider keeps, and the readings read back are the
    ones sent, in order."""
    import io

    import pyarrow as pa

    from helpers import RIVER_REACH
    from twinengine.client import Client

    provider, consumer = sides
    with Client(provider.url, provider.token) as ours:
        ours.publish_app(RIVER_REACH)
        ours.create_twin("river-reach", "live-reach", {"station": "RR-01"})
        ours.streams.append("live-reach", "gauges", _readings(0, 24))
    offer = provider.api("POST", "/api/v1/dataspace/offers", expect=201, json={
        "stream": {"twin": "live-reach", "stream": "gauges", "live": True}, "title": "Gauges, live"})
    _negotiate(consumer, provider, offer, "HttpData-PUSH")
    transfer = eventually(lambda: consumer.api("GET", "/api/v1/dataspace/transfers?role=consumer"), timeout=120)
    _parts(consumer, transfer[0]["id"], 24)  # the history arrived
    with Client(provider.url, provider.token) as ours:
        ours.streams.append("live-reach", "gauges", _readings(24, 12))
    side = provider if killed == "provider" else consumer
    side.kill()
    time.sleep(1)
    side.start()
    with Client(provider.url, provider.token) as ours:
        ours.streams.append("live-reach", "gauges", _readings(36, 4))  # once both are back
    parts = _parts(consumer, transfer[0]["id"], 40)
    assert parts[0][0] == 0 and all(a[1] == b[0] for a, b in itertools.pairwise(parts)), parts
    consumer.api("POST", f"/api/v1/dataspace/transfers/{transfer[0]['id']}/complete")
    pulled = _settled(consumer, "transfers", "consumer")
    served = _settled(provider, "transfers", "provider")
    assert [t["state"] for t in pulled] == [t["state"] for t in served] == ["COMPLETED"], (pulled, served)
    kept = {f["name"]: f["sha256"] for f in served[0]["files"]}
    levels: list[float] = []
    for _start, _end, name in parts:
        data = httpx.get(f"{consumer.url}/api/v1/lake/dids/remote:gauges/{name}/content",
                         headers={"Authorization": f"Bearer {consumer.token}"}, timeout=120).content
        assert hashlib.sha256(data).hexdigest() == kept[name]
        did = consumer.api("GET", f"/api/v1/lake/dids/remote:gauges/{name}")
        assert len(did["replicas"]) == 1, did["replicas"]  # one copy in the consumer's lake
        levels += pa.ipc.open_file(io.BytesIO(data)).read_all().column("level").to_pylist()
    assert levels == [r["level"] for r in _readings(0, 40)]  # every reading once, in order
