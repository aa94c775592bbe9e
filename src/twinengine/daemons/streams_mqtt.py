"""The MQTT bridge: subscribes to the topics twins are bound to, QoS 1, and acknowledges a message to the
broker only after its records are durable in the stream log.

The session is persistent (fixed client id, clean session off), so messages the broker accepted while the
engine was away are delivered when it reconnects; a message redelivered after a crash between append and
acknowledgement is dropped as a duplicate when it carries a producer id and sequence number. When consumers
fall behind the allowed lag the bridge stops acknowledging, which stops the broker sending: producers slow
down, nothing is dropped.

A message is a JSON object (one record), a JSON array of records, JSON lines, or an envelope
``{"producer": "...", "seq": N, "records": [...]}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import pyarrow as pa
from paho.mqtt.enums import CallbackAPIVersion

from twinengine.catalog import service as catalog
from twinengine.catalog.manifest import Stream
from twinengine.daemons.engine_parts import EngineParts
from twinengine.errors import StreamBackpressure, TwinEngineError
from twinengine.store.changes import changed_since
from twinengine.streams import records
from twinengine.streams.hub import stream_key
from twinengine.streams.service import list_bindings, quality_plan
from twinengine.twins.models import Twin

__all__ = ["MqttBridge"]

log = logging.getLogger("twinengine.mqtt")
REFRESH_SECONDS = 1.0
_TOPICS = ("bindings", "twins", "apps")  # a binding goes with its twin; its stream is declared by the app
_MAX_GROUP = 2000


@dataclass(frozen=True)
class _Target:
    twin_id: str
    stream: str
    declared: Stream

    @property
    def key(self) -> str:
        return stream_key(self.twin_id, self.stream)


class MqttBridge:
    """``connect`` keeps the subscription, ``drain_once`` appends what arrived, ``run_once()`` syncs the
    bindings (``daemons.streams_engine`` makes loops of them)."""

    def __init__(self, runtime: EngineParts, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "tcp", "") or not parsed.hostname:
            raise ValueError(f"mqtt_url: {url!r} is not mqtt://host:port")
        self.runtime = runtime
        self.host, self.port = parsed.hostname, parsed.port or 1883
        client_id = "twinengine-" + hashlib.sha1(str(runtime.data_dir).encode()).hexdigest()[:12]
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                  manual_ack=True)
        if parsed.username:
            self.client.username_pw_set(parsed.username, parsed.password)
        self.client.reconnect_delay_set(1, 2)
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.targets: dict[str, _Target] = {}
        self.subscribed: set[str] = set()  # asked for
        self.ready: set[str] = set()  # confirmed by the broker (SUBACK)
        self._asked: dict[int, set[str]] = {}
        self.inbox: queue.SimpleQueue[mqtt.MQTTMessage] = queue.SimpleQueue()
        self.accepted = 0
        self.rejected = 0
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._counters: dict[str, int] | None = None  # change counters when the bindings were last read

    # -- subscription ----------------------------------------------------------------------------

    def run_once(self) -> int:
        """Load the bindings and (un)subscribe to match; returns the number of bound topics. Bindings are
        read again only after the change counters of bindings, twins or apps moved."""
        with self.runtime.db.session(readonly=True) as session:
            changes = changed_since(session, self._counters, _TOPICS)
            if not changes.any:
                return len(self.targets)
            self._counters = changes.values
            targets = {}
            for binding in list_bindings(session):
                twin = session.get(Twin, binding.twin_id)
                if twin is None:
                    continue
                declared = catalog.manifest_by_id(session, twin.app_id).streams.get(binding.stream)
                if declared is not None:
                    targets[binding.mqtt_topic] = _Target(twin.id, binding.stream, declared)
        with self._lock:
            self.targets = targets
        if self.connected.is_set():
            self._sync_subscriptions()
        return len(targets)

    def _sync_subscriptions(self) -> None:
        with self._lock:
            wanted = set(self.targets)
            add, remove = wanted - self.subscribed, self.subscribed - wanted
            self.subscribed = wanted
        if add:
            with self._lock:  # held until the mid is noted: the SUBACK may come back before subscribe() returns
                _result, mid = self.client.subscribe([(topic, 1) for topic in sorted(add)])
                if mid is not None:
                    self._asked[mid] = add
        if remove:
            self.client.unsubscribe(sorted(remove))
            with self._lock:
                self.ready -= remove

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, mid: int, _codes: Any, _props: Any) -> None:
        with self._lock:
            self.ready |= self._asked.pop(mid, set())

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        with self._lock:
            self.subscribed, self.ready = set(), set()
        self.connected.set()
        self._sync_subscriptions()
        log.info("subscribed to %d topics on %s:%s", len(self.subscribed), self.host, self.port)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.inbox.put(message)

    # -- appending -------------------------------------------------------------------------------

    def _decode(self, target: _Target, payload: bytes) -> tuple[list[Any] | pa.Table, str | None, int | None]:
        """Records of one message (dicts, or a table for JSON lines), and its producer and sequence number."""
        try:
            data: Any = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return records.parse_json_lines(target.declared, payload), None, None
        if isinstance(data, dict) and "records" in data:
            items = data["records"] if isinstance(data["records"], list) else [data["records"]]
            seq = data.get("seq")
            return items, data.get("producer"), seq if isinstance(seq, int) else None
        return (data if isinstance(data, list) else [data]), None, None

    def _process(self, group: list[mqtt.MQTTMessage]) -> None:
        """Append a group of messages (one batch per topic for those without a producer), then ack them."""
        with self._lock:
            targets = dict(self.targets)
        plain: dict[str, list[tuple[bytes, mqtt.MQTTMessage]]] = {}
        for message in group:
            target = targets.get(message.topic)
            if target is None:
                self._ack(message)  # unbound meanwhile: nothing to feed
                continue
            payload = bytes(message.payload)
            if b'"records"' not in payload:  # no envelope, hence no producer: batch it with its neighbours
                plain.setdefault(message.topic, []).append((payload, message))
                continue
            try:
                items, producer, seq = self._decode(target, payload)
                table = items if isinstance(items, pa.Table) else records.check_records(target.declared, items)
            except TwinEngineError as exc:
                self._refuse(message, exc)
                continue
            self._flush(target, plain.pop(message.topic, []))  # keep arrival order within a topic
            self._append(target, table, [message], producer=producer, seq=seq)
        for topic, waiting in plain.items():
            self._flush(targets[topic], waiting)

    def _refuse(self, message: mqtt.MQTTMessage, exc: TwinEngineError) -> None:
        self.rejected += 1
        log.warning("MQTT message on %s refused: %s", message.topic, exc.message)
        self._ack(message)  # a message that can never be valid is not redelivered forever

    def _flush(self, target: _Target, waiting: list[tuple[bytes, mqtt.MQTTMessage]]) -> None:
        """Validate the waiting messages of a topic as one batch (JSON lines through pyarrow's parser); if
        that fails, message by message, refusing the bad ones."""
        if not waiting:
            return
        if all(p.lstrip()[:1] == b"{" and b"\n" not in p.strip() for p, _ in waiting):
            try:
                table = records.parse_json_lines(target.declared, b"\n".join(p for p, _ in waiting))
                self._append(target, table, [m for _, m in waiting])
                return
            except TwinEngineError:
                pass
        good: list[tuple[pa.Table, mqtt.MQTTMessage]] = []
        for payload, message in waiting:
            try:
                items, _producer, _seq = self._decode(target, payload)
                good.append((items if isinstance(items, pa.Table) else
                             records.check_records(target.declared, items), message))
            except TwinEngineError as exc:
                self._refuse(message, exc)
        if good:
            self._append(target, pa.concat_tables([t for t, _ in good]), [m for _, m in good])

    def _append(self, target: _Target, table: pa.Table, messages: list[mqtt.MQTTMessage], *,
                producer: str | None = None, seq: int | None = None) -> None:
        while True:
            try:
                self.runtime.streams.append(target.key, table, time_field=target.declared.time_field,
                                            producer=producer, seq=seq if isinstance(seq, int) else None,
                                            quality=quality_plan(target.declared))  # as an HTTP append is
                break
            except StreamBackpressure as exc:  # hold the acks: the broker stops sending until we catch up
                time.sleep(min(exc.retry_after, 0.5))
        self.accepted += len(messages)
        for message in messages:
            self._ack(message)

    def _ack(self, message: mqtt.MQTTMessage) -> None:
        if message.qos > 0:
            self.client.ack(message.mid, message.qos)

    def drain_once(self) -> int:
        """Append one group of what arrived (waiting briefly for the first message); returns its size."""
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return 0
        group = [first]
        while len(group) < _MAX_GROUP:
            try:
                group.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        try:
            self._process(group)
        except Exception:  # never ack what was not appended: the broker will redeliver it
            log.exception("MQTT batch failed; %d messages left unacknowledged", len(group))
        return len(group)

    def connect(self) -> None:
        """Load the bindings, then connect (paho's network thread keeps the session, reconnecting)."""
        self.run_once()
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()
