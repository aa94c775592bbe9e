"""NATS JetStream as the stream log (scale-out): one JetStream stream per twin stream, file storage.

A publish is acknowledged by JetStream once the message is stored; only then does our future complete.
Entry numbers are JetStream sequence numbers, gap-free because nothing is deleted from these streams.
JetStream has no segments of its own to close, so this log defines them: entries ``k*N + 1 .. (k+1)*N``
(``N`` = ``TWIN_STREAM_SEGMENT_ENTRIES``) are one closed segment as soon as entry ``(k+1)*N`` is stored. They
are fixed ranges of sequence numbers, the same on every engine process and after every restart.
The asyncio client runs on its own event loop thread so the engine's threads can call it synchronously.

Several engine processes may append to one stream (``shared``): ``append_after`` sends JetStream's
``Nats-Expected-Last-Sequence``, so an entry numbered from an old picture of the stream is refused, not
stored; and after each append a one-line notice goes out on ``twinlog-appended.<name>`` (core NATS, no
payload but the key), which ``watch`` turns into calls in every other process. A reconnect may have missed
notices, so it calls ``appended(None)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import nats
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from twinengine.errors import StreamUnavailable
from twinengine.streams.backends.base import AppendConflict, Sealed, StreamLog

if TYPE_CHECKING:
    from twinengine.config import Settings

__all__ = ["NatsLog"]

T = TypeVar("T")
_TIMEOUT = 10.0
_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code: the expected last sequence is not the stream's
_NOTICES = "twinlog-appended"


def _name(key: str) -> str:
    return "TWIN_" + hashlib.sha1(key.encode()).hexdigest()[:20].upper()


class NatsLog(StreamLog):
    """JetStream streams named ``TWIN_<hash of key>``; the key itself is kept in the stream's description."""

    name = "nats"
    description = "NATS JetStream (scale-out): replicated, file-backed streams"
    shared = True

    def __init__(self, url: str, *, connect_timeout: float = 5.0, segment_entries: int = 1000) -> None:
        if segment_entries < 1:
            raise ValueError("segment_entries must be at least 1")
        self.url = url
        self.segment_entries = segment_entries
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="twin-stream-nats", daemon=True)
        self._thread.start()
        self._locks: dict[str, asyncio.Lock] = {}
        self._ready: set[str] = set()
        self._origin = secrets.token_hex(8)  # this process's notices, told from the others'
        self._watcher: Callable[[str | None], None] | None = None
        try:
            self._nc = self._call(nats.connect(url, connect_timeout=connect_timeout, max_reconnect_attempts=-1,
                                               allow_reconnect=True, reconnected_cb=self._reconnected))
        except Exception as exc:
            self._stop_loop()
            raise StreamUnavailable(f"cannot connect to NATS at {url}: {exc}") from exc
        self._js = self._nc.jetstream(timeout=_TIMEOUT)
        self.max_entry_bytes = max(int(self._nc.max_payload) - 4096, 64 * 1024)

    @classmethod
    def from_settings(cls, settings: Settings) -> NatsLog:
        return cls(settings.nats_url, segment_entries=settings.stream_segment_entries)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 2 * _TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _ensure(self, key: str) -> str:
        name = _name(key)
        if key not in self._ready:
            try:
                await self._js.stream_info(name)
            except NotFoundError:
                await self._js.add_stream(StreamConfig(name=name, subjects=[f"twinlog.{name}"], description=key,
                                                       storage=StorageType.FILE, max_msg_size=-1))
            self._ready.add(key)
        return name

    async def _publish(self, key: str, payload: bytes, after: int | None = None) -> int:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one in flight per stream keeps entries in call order
            name = await self._ensure(key)
            expect = None if after is None else {"Nats-Expected-Last-Sequence": str(after)}
            try:
                ack = await self._js.publish(f"twinlog.{name}", payload, stream=name, timeout=_TIMEOUT,
                                             headers=expect)
            except APIError as exc:
                if exc.err_code == _WRONG_LAST_SEQUENCE:
                    raise AppendConflict(f"stream {key} has entries after {after}") from None
                raise
            await self._nc.publish(f"{_NOTICES}.{name}", f"{self._origin}\n{key}".encode())
            return int(ack.seq)

    def append(self, key: str, payload: bytes) -> Future[int]:
        return asyncio.run_coroutine_threadsafe(self._publish(key, payload), self._loop)

    def append_after(self, key: str, payload: bytes, after: int) -> Future[int]:
        return asyncio.run_coroutine_threadsafe(self._publish(key, payload, after), self._loop)

    def watch(self, appended: Callable[[str | None], None]) -> None:
        async def notice(msg: Any) -> None:
            origin, _, key = bytes(msg.data).decode().partition("\n")
            if origin != self._origin and key:
                appended(key)

        async def subscribe() -> None:
            await self._nc.subscribe(f"{_NOTICES}.>", cb=notice)
            await self._nc.flush()  # subscribed on the server before this returns

        self._watcher = appended
        self._call(subscribe())

    async def _reconnected(self) -> None:
        if self._watcher is not None:
            self._watcher(None)  # notices sent while the connection was down are lost

    async def _read(self, key: str, first: int, max_entries: int) -> list[tuple[int, bytes]]:
        name = _name(key)
        try:
            info = await self._js.stream_info(name)
        except NotFoundError:
            return []
        last = min(int(info.state.last_seq), first + max_entries - 1)
        out = []
        for seq in range(max(first, 1), last + 1):
            msg = await self._js.get_msg(name, seq)
            out.append((seq, bytes(msg.data or b"")))
        return out

    def read(self, key: str, first: int, max_entries: int) -> list[tuple[int, bytes]]:
        return self._call(self._read(key, first, max_entries), timeout=120)

    async def _last(self, key: str) -> int:
        try:
            return int((await self._js.stream_info(_name(key))).state.last_seq)
        except NotFoundError:
            return 0

    def last(self, key: str) -> int:
        return self._call(self._last(key))

    async def _list_keys(self) -> list[str]:
        found = []
        for info in await self._js.streams_info():
            if info.config.name and info.config.name.startswith("TWIN_") and info.config.description:
                found.append(info.config.description)
        return sorted(found)

    def list_keys(self) -> list[str]:
        return self._call(self._list_keys())

    async def _bounds(self, key: str) -> tuple[int, int]:
        try:
            state = (await self._js.stream_info(_name(key))).state
        except NotFoundError:
            return 0, 0
        return int(state.first_seq), int(state.last_seq)

    def sealed(self, key: str) -> list[Sealed]:
        """Every full range of ``segment_entries`` sequence numbers still held by the stream (a range whose
        first messages JetStream no longer has, say after an operator's purge, is left out)."""
        first_seq, last_seq = self._call(self._bounds(key))
        n = self.segment_entries
        return [(start, start + n - 1) for start in range(1, last_seq - n + 2, n) if start >= first_seq]

    async def _drop(self, key: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._js.delete_stream(_name(key))
        self._ready.discard(key)

    def drop(self, key: str) -> None:
        self._call(self._drop(key))

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._nc.drain(), timeout=15)
        self._stop_loop()
