"""MQTT ingestion against real mosquitto brokers: QoS 1 messages become durable records (acknowledged only
after the append), the app's function turns them into state, and a broker restart mid-stream loses nothing
the broker accepted (each record exactly once, thanks to producer sequence numbers)."""

from __future__ import annotations

import getpass
import json
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from starlette.testclient import TestClient

from helpers import RIVER_REACH, Engine, free_port
from streams_fixtures import (  # noqa: F401
    EXPECTED,
    drop_streams,
    eventually,
    faulty_gauges,
    gauge,
    require_mqtt,
    stream_settings,
    unavailable,
)
from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.runtime import Runtime


class Mosquitto:
    """A mosquitto broker of our own on a free port, with a persistent store so restarts keep sessions."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            unavailable("mosquitto", "the mosquitto binary is not installed (apt-get install mosquitto)")
        self.binary, self.port = binary, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                               f"persistence_location {folder}/\nautosave_interval 1\nmax_queued_messages 0\n"
                               f"max_inflight_messages 100\nuser {getpass.getuser()}\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # mosquitto saves its store on the way out
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    own = Mosquitto(tmp_path / "mosquitto")
    own.start()
    try:
        yield own
    finally:
        own.stop()


def run_engine(settings: Settings, drop: list[Any]) -> tuple[Runtime, TestClient]:
    runtime = Runtime.from_settings(settings)
    drop.append(runtime)
    return runtime, TestClient(create_app(runtime=runtime))


def publisher(url: str) -> tuple[mqtt.Client, dict[int, int], threading.Lock]:
    """A paho publisher that reconnects by itself; returns it and {mid: seq} of what the broker accepted."""
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{secrets.token_hex(4)}", clean_session=False)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(50)
    client.reconnect_delay_set(1, 1)
    accepted: dict[int, int] = {}
    lock = threading.Lock()

    def on_publish(_client: Any, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        with lock:
            accepted[mid] = -1

    client.on_publish = on_publish
    client.connect(host, int(port))
    client.loop_start()
    return client, accepted, lock


@contextmanager
def reach_on_a_topic(tmp_path: Path, drop: list[Any]) -> Iterator[tuple[Client, str, mqtt.Client]]:
    """River-reach's twin with its gauges bound to a fresh topic, subscribed; yields uma, the topic and a
    started publisher."""
    url = require_mqtt()
    topic = f"test/{secrets.token_hex(4)}/gauges"
    runtime, http = run_engine(stream_settings(tmp_path / "data", "local", mqtt_url=url), drop)
    with http:
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token="")  # type: ignore[arg-type]
        engine.as_role("ada", "developer").publish_app(RIVER_REACH)
        uma = engine.as_role("uma", "user")
        uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
        binding = uma.streams.bind_mqtt("reach", "gauges", topic)
        assert binding.mqtt_topic == topic and uma.streams.list("reach")[0].mqtt_topic == topic
        eventually(lambda: subscribed(http, topic))
        host, port = url.removeprefix("mqtt://").split(":")
        pub = mqtt.Client(CallbackAPIVersion.VERSION2)
        pub.connect(host, int(port))
        pub.loop_start()
        yield uma, topic, pub


def test_mqtt_messages_become_records_and_state(tmp_path: Path, drop_streams: list[Any]) -> None:  # noqa: F811
    with reach_on_a_topic(tmp_path, drop_streams) as (uma, topic, pub):
        infos = [pub.publish(topic, json.dumps(gauge(0)), qos=1),
                 pub.publish(topic, json.dumps([gauge(1), gauge(2)]), qos=1),
                 pub.publish(topic, json.dumps({"producer": "rr01", "seq": 3, "records": [gauge(3)]}), qos=1),
                 pub.publish(topic, json.dumps({"producer": "rr01", "seq": 3, "records": [gauge(3)]}), qos=1),
                 pub.publish(topic, json.dumps({"time": "soon"}), qos=1)]
        for info in infos:
            info.wait_for_publish(10)
        pub.loop_stop()
        page = eventually(lambda: (p := uma.streams.read("reach", "gauges")).count == 4 and p)
        assert [r["level"] for r in page.items] == [gauge(i)["level"] for i in range(4)]
        state = eventually(lambda: (s := uma.get_state("reach")).revision == 4 and s)
        assert state.reported["level"].value == gauge(3)["level"]
        assert state.reported["discharge"].value > 0  # the function ran the rating curve
        uma.streams.unbind_mqtt("reach", "gauges")
        assert uma.streams.list("reach")[0].mqtt_topic is None


def test_records_over_mqtt_are_flagged_as_over_http(tmp_path: Path, drop_streams: list[Any]) -> None:  # noqa: F811
    """The stream's quality checks judge what arrives through a broker as they judge an HTTP append."""
    with reach_on_a_topic(tmp_path, drop_streams) as (uma, topic, pub):
        records = faulty_gauges()
        for batch in (records[:10], records[10:]):  # the stuck run spans both messages
            pub.publish(topic, json.dumps(batch), qos=1).wait_for_publish(10)
        pub.loop_stop()
        page = eventually(lambda: (p := uma.streams.read("reach", "gauges")).count == len(records) and p)
        flags = {r["_offset"]: (r["_quality"], r["_checks"]) for r in page.items}
        assert {o: f for o, f in flags.items() if f[0] != "good"} == EXPECTED


def test_a_binding_stops_when_its_maker_may_no_longer_append(tmp_path: Path,
                                                              drop_streams: list[Any]) -> None:  # noqa: F811
    """A binding feeds the twin for whoever made it: withdrawing their grant, or lowering it to read, drops
    it, or they could go on writing into the twin by publishing on the topic they bound."""
    url = require_mqtt()
    runtime, http = run_engine(stream_settings(tmp_path / "data", "local", mqtt_url=url), drop_streams)
    host, port = url.removeprefix("mqtt://").split(":")
    with http:
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token="")  # type: ignore[arg-type]
        engine.as_role("ada", "developer").publish_app(RIVER_REACH)
        uma = engine.as_role("uma", "user")
        bob = engine.as_role("bob", "user")
        uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
        for lowered in ("withdrawn", "read"):
            topic = f"test/{secrets.token_hex(4)}/gauges"
            uma.grant("reach", "bob", "operate")
            bob.streams.bind_mqtt("reach", "gauges", topic)
            eventually(lambda topic=topic: subscribed(http, topic))
            pub = mqtt.Client(CallbackAPIVersion.VERSION2)
            pub.connect(host, int(port))
            pub.loop_start()
            before = uma.streams.read("reach", "gauges").count
            pub.publish(topic, json.dumps(gauge(before)), qos=1).wait_for_publish(10)
            eventually(lambda before=before: uma.streams.read("reach", "gauges").count == before + 1)

            if lowered == "withdrawn":
                uma.revoke_grant("reach", "bob")
            else:
                uma.grant("reach", "bob", "read")
            assert uma.streams.list("reach")[0].mqtt_topic is None  # gone with the grant, in its transaction
            eventually(lambda topic=topic: not subscribed(http, topic))
            pub.publish(topic, json.dumps(gauge(before + 1)), qos=1).wait_for_publish(10)
            pub.loop_stop()
            time.sleep(1.5)  # what the bridge would have appended by now, were it still subscribed
            assert uma.streams.read("reach", "gauges").count == before + 1, lowered


def subscribed(http: TestClient, topic: str) -> bool:
    """Has this engine's MQTT bridge got the broker's SUBACK for ``topic``?"""
    bridge = http.app.state.stream_daemons.mqtt  # type: ignore[attr-defined]
    return bridge is not None and topic in bridge.ready


@pytest.mark.slow
@pytest.mark.ci_only  # a broker of its own, killed and started again mid-stream
def test_broker_restart_mid_stream_loses_nothing_it_accepted(tmp_path: Path, broker: Mosquitto,
                                                            drop_streams: list[Any]) -> None:  # noqa: F811
    topic = "reach/rr01/gauges"
    runtime, http = run_engine(stream_settings(tmp_path / "data", "local", mqtt_url=broker.url), drop_streams)
    with http:
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token="")  # type: ignore[arg-type]
        engine.as_role("ada", "developer").publish_app(RIVER_REACH)
        uma: Client = engine.as_role("uma", "user")
        uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
        uma.streams.bind_mqtt("reach", "gauges", topic)
        eventually(lambda: subscribed(http, topic))
        client, accepted, lock = publisher(broker.url)
        sent: dict[int, int] = {}
        total = 1500
        for seq in range(total):
            info = client.publish(topic, json.dumps({"producer": "rr01", "seq": seq, "records": [gauge(seq)]}),
                                  qos=1)
            sent[info.mid] = seq
            if seq == total // 3:
                broker.stop()  # the broker goes away mid-stream...
                time.sleep(0.5)
                broker.start()  # ...and comes back with its persistent store
            time.sleep(0.001)
        eventually(lambda: len(accepted) >= total, timeout=60)
        client.loop_stop()
        with lock:
            acked = {sent[mid] for mid in accepted if mid in sent}
        assert len(acked) == total
        table = eventually(lambda: (t := uma.streams.read_arrow("reach", "gauges")).num_rows >= total and t,
                           timeout=60)
        levels = table.column("level").to_pylist()
        expected = {gauge(seq)["level"] for seq in acked}
        assert set(levels) == expected
        assert len(levels) == len(set(levels)) == total  # each accepted message exactly once


def test_a_lagging_consumer_holds_mqtt_acks_until_it_catches_up(tmp_path: Path, broker: Mosquitto,
                                                                drop_streams: list[Any]) -> None:  # noqa: F811
    topic = "reach/rr01/gauges"
    runtime, http = run_engine(stream_settings(tmp_path / "data", "local", mqtt_url=broker.url, stream_max_lag=5),
                               drop_streams)
    with http:
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token="")  # type: ignore[arg-type]
        engine.as_role("ada", "developer").publish_app(RIVER_REACH)
        uma = engine.as_role("uma", "user")
        twin_id = uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"}).id
        uma.streams.bind_mqtt("reach", "gauges", topic)
        eventually(lambda: subscribed(http, topic))
        key = f"{twin_id}/gauges"
        uma.streams.append("reach", "gauges", [gauge(0)])
        runtime.streams.commit(key, "slow-consumer", 0)  # a consumer that does not move: lag grows with each record
        client, accepted, _lock = publisher(broker.url)
        for seq in range(1, 21):
            client.publish(topic, json.dumps({"producer": "rr01", "seq": seq, "records": [gauge(seq)]}), qos=1)
        eventually(lambda: len(accepted) == 20)  # the broker took them all...
        time.sleep(1.0)
        held = runtime.streams.end(key)
        assert held <= 7  # ...but the engine stopped appending at the lag limit, and holds the rest unacknowledged
        runtime.streams.commit(key, "slow-consumer", 10_000)  # the consumer catches up
        eventually(lambda: runtime.streams.end(key) == 21)
        client.loop_stop()
        levels = uma.streams.read_arrow("reach", "gauges").column("level").to_pylist()
        assert levels == [gauge(i)["level"] for i in range(21)]  # nothing dropped, in order
