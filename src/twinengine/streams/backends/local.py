"""The embedded stream log: append-only segment files per stream, written by one thread with group commit.

Appends from every stream queue up; the writer takes all that is waiting, writes each entry as a frame
(length, crc32, bytes), fsyncs each touched segment once, and only then completes the futures. Many
producers therefore share one fsync, and nothing is acknowledged before it is on disk. On open, a torn
frame at the end of the newest segment (a crash mid-write, never acknowledged) is cut off. Only that segment
is read on open: a closed one's entries are numbered by its name and the next one's, and it is indexed when
first read, so an engine is back after a crash in a time that does not grow with the log's history.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import os
import queue
import shutil
import struct
import threading
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from twinengine.errors import DataCorrupted, StreamUnavailable
from twinengine.streams.backends.base import Sealed, StreamLog

if TYPE_CHECKING:
    from twinengine.config import Settings

__all__ = ["LocalLog"]

_FRAME = struct.Struct("<II")  # payload length, crc32
_MAX_GROUP = 4096
_SUFFIX = ".seg"


@dataclass
class _Segment:
    first: int
    path: Path
    positions: list[int] = field(default_factory=list)  # byte position of each frame
    size: int = 0
    closed: bool = False
    indexed: bool = True  # False: a closed segment not read since the log was opened
    end: int = 0  # the last entry of a closed segment not indexed yet (the next segment's first - 1)

    @property
    def last(self) -> int:
        return self.first + len(self.positions) - 1 if self.indexed else self.end


@dataclass
class _Stream:
    folder: Path
    segments: list[_Segment]
    durable: int  # newest entry on disk
    handle: object | None = None  # the open, buffered file of the last segment


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _scan(segment: _Segment, *, repair: bool) -> None:
    """Index the frames of a segment; in the newest one cut a torn or corrupt tail."""
    with segment.path.open("rb") as fh:
        data = memoryview(fh.read())  # checksums read slices of it in place, without copying them
    pos = 0
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if end > len(data) or (repair and zlib.crc32(data[pos + _FRAME.size: end]) != crc):
            break
        segment.positions.append(pos)
        pos = end
    segment.size = pos
    if pos != len(data):
        if not repair:
            raise DataCorrupted(f"stream segment {segment.path} is damaged at byte {pos}")
        with segment.path.open("r+b") as fh:
            fh.truncate(pos)
            fh.flush()
            os.fsync(fh.fileno())


def _index(segment: _Segment) -> None:
    """Index a closed segment on its first read; it must hold exactly the entries its neighbours say."""
    probe = _Segment(first=segment.first, path=segment.path)
    _scan(probe, repair=False)
    if probe.last != segment.end:
        raise DataCorrupted(f"stream segment {segment.path} holds {len(probe.positions)} entries, not "
                            f"{segment.end - segment.first + 1}")
    segment.positions, segment.size = probe.positions, probe.size
    segment.indexed = True  # last: until then readers number its entries by ``end``, which agrees


class LocalLog(StreamLog):
    """Segments under ``root/<twin id>/<stream>/<first entry>.seg``; closed at ``segment_bytes``."""

    name = "local"
    description = "append-only segment files with fsync group commit (embedded default)"
    max_entry_bytes = 1 << 30  # a whole upload (TWIN_STREAM_MAX_REQUEST_BYTES) stays one entry: all or nothing

    def __init__(self, root: Path, *, segment_bytes: int = 64 << 20) -> None:
        self.root = root
        self.segment_bytes = segment_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lockfile = (self.root / ".lock").open("a+b")
        try:  # one writer per folder: a second engine process on the same data would interleave frames
            fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockfile.close()
            raise StreamUnavailable(f"another engine process has the stream log {self.root} open") from None
        self._streams: dict[str, _Stream] = {}
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, bytes, Future[int]] | None] = queue.SimpleQueue()
        self.pending_bytes = 0
        self._writer = threading.Thread(target=self._write_loop, name="twin-stream-log", daemon=True)
        self._closed = False
        self._writer.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalLog:
        return cls(settings.streams_dir or settings.data_dir / "streams", segment_bytes=settings.stream_segment_bytes)

    # -- opening ---------------------------------------------------------------------------------

    def _stream(self, key: str) -> _Stream:
        with self._lock:
            found = self._streams.get(key)
            if found is None:
                found = self._streams[key] = self._open(key)
            return found

    def _open(self, key: str) -> _Stream:
        folder = self.root / key
        files = sorted(folder.glob(f"*{_SUFFIX}")) if folder.is_dir() else []
        segments = [_Segment(first=int(p.stem), path=p, closed=True, indexed=False) for p in files]
        for older, newer in pairwise(segments):
            older.end = newer.first - 1
        if segments:
            newest = segments[-1]
            newest.closed, newest.indexed = False, True
            _scan(newest, repair=True)
        if segments and not segments[-1].positions and len(segments) > 1:
            segments[-1].path.unlink()  # an empty newest segment: start again in the previous one's place
            segments.pop()
            _index(segments[-1])
            segments[-1].closed = False
        durable = segments[-1].last if segments else 0
        return _Stream(folder=folder, segments=segments, durable=durable)

    # -- writing ---------------------------------------------------------------------------------

    def append(self, key: str, payload: bytes) -> Future[int]:
        if self._closed:
            raise RuntimeError("the stream log is closed")
        future: Future[int] = Future()
        self._stream(key)  # open (and repair) before queuing
        with self._lock:
            self.pending_bytes += len(payload)
        self._queue.put((key, payload, future))
        return future

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            while len(group) < _MAX_GROUP:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                group.append(more)
            self._commit(group)

    def _commit(self, group: list[tuple[str, bytes, Future[int]]]) -> None:
        touched: dict[str, _Stream] = {}
        new_dirs: set[Path] = set()
        numbers: list[int] = []
        try:
            for key, payload, _future in group:
                stream = self._streams[key]
                numbers.append(self._write(stream, payload, new_dirs))
                touched[key] = stream
            for stream in touched.values():
                handle = stream.handle
                handle.flush()  # type: ignore[attr-defined]
                os.fsync(handle.fileno())  # type: ignore[attr-defined]
            for folder in new_dirs:
                _fsync_dir(folder)
        except BaseException as exc:
            for key in {k for k, _, _ in group}:  # reopen from disk: what was not synced is not there
                self._reset(key)
            for _, payload, future in group:
                self._done(len(payload))
                future.set_exception(exc)
            return
        for stream, number in zip((self._streams[k] for k, _, _ in group), numbers, strict=True):
            stream.durable = max(stream.durable, number)
        for (_, payload, future), number in zip(group, numbers, strict=True):
            self._done(len(payload))
            future.set_result(number)

    def _done(self, size: int) -> None:
        with self._lock:
            self.pending_bytes -= size

    def _write(self, stream: _Stream, payload: bytes, new_dirs: set[Path]) -> int:
        frame = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        segment = stream.segments[-1] if stream.segments else None
        if segment is None or (segment.positions and segment.size + len(frame) > self.segment_bytes):
            segment = self._roll(stream, new_dirs)
        if stream.handle is None:
            stream.handle = segment.path.open("ab")
        segment.positions.append(segment.size)
        stream.handle.write(frame)  # type: ignore[attr-defined]
        segment.size += len(frame)
        return segment.last

    def _roll(self, stream: _Stream, new_dirs: set[Path]) -> _Segment:
        first = 1
        if stream.segments:
            old = stream.segments[-1]
            if stream.handle is not None:
                stream.handle.flush()  # type: ignore[attr-defined]
                os.fsync(stream.handle.fileno())  # type: ignore[attr-defined]
                stream.handle.close()  # type: ignore[attr-defined]
                stream.handle = None
            old.closed = True
            first = old.last + 1
        if not stream.folder.is_dir():
            stream.folder.mkdir(parents=True)
            new_dirs.add(stream.folder.parent)
            new_dirs.add(self.root)
        segment = _Segment(first=first, path=stream.folder / f"{first:020d}{_SUFFIX}")
        segment.path.touch()
        new_dirs.add(stream.folder)
        stream.segments.append(segment)
        return segment

    def _reset(self, key: str) -> None:
        stream = self._streams.pop(key, None)
        if stream is not None and stream.handle is not None:
            with contextlib.suppress(OSError):
                stream.handle.close()  # type: ignore[attr-defined]
        self._streams[key] = self._open(key)

    # -- reading ---------------------------------------------------------------------------------

    def read(self, key: str, first: int, max_entries: int) -> list[tuple[int, bytes]]:
        return self._read(key, first, max_entries, None)

    def read_prefix(self, key: str, first: int, max_entries: int, size: int) -> list[tuple[int, bytes]]:
        return self._read(key, first, max_entries, size)

    def _read(self, key: str, first: int, max_entries: int, prefix: int | None) -> list[tuple[int, bytes]]:
        """Entries from ``first``; with ``prefix``, only their first bytes (no checksum: a header peek)."""
        stream = self._stream(key)
        with self._lock:
            last = min(stream.durable, first + max_entries - 1)
            if first < 1 or first > last or not stream.segments:
                return []
            firsts = [s.first for s in stream.segments]
            start = max(bisect.bisect_right(firsts, first) - 1, 0)
            unindexed = [s for s in stream.segments[start:] if s.first <= last and not s.indexed]
        for segment in unindexed:  # closed segments: read outside the lock, appends go on meanwhile
            _index(segment)
        with self._lock:
            plan = [(s.path, s.first, list(s.positions[max(first - s.first, 0): last - s.first + 1]))
                    for s in stream.segments[start:] if s.first <= last]
        out: list[tuple[int, bytes]] = []
        for path, seg_first, positions in plan:
            if not positions:
                continue
            number = max(first, seg_first)
            with path.open("rb") as fh:
                for position in positions:
                    fh.seek(position)
                    length, crc = _FRAME.unpack(fh.read(_FRAME.size))
                    payload = fh.read(length if prefix is None else min(length, prefix))
                    if prefix is None and (len(payload) != length or zlib.crc32(payload) != crc):
                        raise DataCorrupted(f"entry {number} of stream {key} does not match its checksum")
                    out.append((number, payload))
                    number += 1
        return out

    def last(self, key: str) -> int:
        return self._stream(key).durable

    def list_keys(self) -> list[str]:
        found = {f"{p.parent.parent.name}/{p.parent.name}" for p in self.root.glob(f"*/*/*{_SUFFIX}")
                 if p.parent.parent.name != "parquet"}
        with self._lock:
            found |= {k for k, s in self._streams.items() if s.durable}
        return sorted(found)

    def sealed(self, key: str) -> list[Sealed]:
        stream = self._stream(key)
        with self._lock:
            return [(s.first, s.last) for s in stream.segments if s.closed and s.last >= s.first]

    def segment_path(self, key: str, first: int) -> Path:
        return self.root / key / f"{first:020d}{_SUFFIX}"

    def drop(self, key: str) -> None:
        with self._lock:
            stream = self._streams.pop(key, None)
            if stream is not None and stream.handle is not None:
                stream.handle.close()  # type: ignore[attr-defined]
        shutil.rmtree(self.root / key, ignore_errors=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join(timeout=30)
        with self._lock:
            for stream in self._streams.values():
                if stream.handle is not None:
                    stream.handle.close()  # type: ignore[attr-defined]
                    stream.handle = None
        self._lockfile.close()
