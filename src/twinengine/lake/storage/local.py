"""Endpoints on a local (or mounted) folder: temp file in ``<root>/.incoming``, fsync, rename, fsync of the
folder. Interrupted writes leave only files in ``.incoming``, which ``cleanup`` removes.

Each written chunk is handed to the kernel at once and its write-back started (``posix_fadvise`` DONTNEED
starts it on Linux without waiting), so the disk works while the next chunks are hashed and the single
``fsync`` at the end waits only for the tail instead of the whole file."""

from __future__ import annotations

import errno
import os
import queue
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, ClassVar

from twinengine.errors import InvalidInput, StorageFull, StorageUnavailable
from twinengine.lake.storage.base import CHUNK, StorageBackend, Writer
from twinengine.lake.storage.buffers import BufferPool

__all__ = ["LocalStorage", "LocalWriter"]

INCOMING = ".incoming"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(exc: OSError, what: str) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"{what}: no space left on the device")
    return StorageUnavailable(f"{what}: {exc.strerror or exc}")


_FADVISE = hasattr(os, "posix_fadvise") and sys.platform == "linux"


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes at ``offset`` back to disk without waiting (a hint; no-op elsewhere)."""
    if _FADVISE and length > 0:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def write_all(fd: int, chunk: bytes | memoryview) -> None:
    view = memoryview(chunk).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _kernel_copy(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    """copy_file_range where the kernel has it (a reflink on file systems that share blocks), else sendfile,
    else plain reads and writes; writes at ``dst_fd``'s position."""
    global _COPY_FILE_RANGE, _SENDFILE
    if _COPY_FILE_RANGE:
        try:
            return os.copy_file_range(src_fd, dst_fd, count, offset)
        except OSError as exc:
            if exc.errno not in _NOT_SUPPORTED:
                raise
            _COPY_FILE_RANGE = False
    if _SENDFILE:
        try:
            return os.sendfile(dst_fd, src_fd, offset, count)
        except OSError as exc:
            if exc.errno not in _NOT_SUPPORTED:
                raise
            _SENDFILE = False
    chunk = os.pread(src_fd, count, offset)
    write_all(dst_fd, chunk)
    return len(chunk)


_COPY_AHEAD = 4
_NOT_SUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}
_COPY_FILE_RANGE = hasattr(os, "copy_file_range")
_SENDFILE = hasattr(os, "sendfile") and sys.platform == "linux"


class LocalWriter(Writer):
    def __init__(self, root: Path, target: Path) -> None:
        self.target = target
        self.tmp = root / INCOMING / f"{uuid.uuid4().hex}.part"
        self.offset = 0
        self._reader: int | None = None
        try:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self.fd: int | None = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise _os_error(exc, f"cannot write to {root}") from exc

    def write(self, chunk: bytes | memoryview) -> None:
        assert self.fd is not None
        try:
            write_all(self.fd, chunk)
            start_writeback(self.fd, self.offset, len(chunk))
            self.offset += len(chunk)
        except OSError as exc:
            self.abort()
            raise _os_error(exc, f"writing {self.target.name}") from exc

    def copy_from(self, src_fd: int, offset: int, count: int) -> int:
        """Append up to ``count`` bytes of ``src_fd`` from ``offset``, copied inside the kernel (no bytes pass
        through Python); returns how many were copied, 0 at the end of the source."""
        assert self.fd is not None
        try:
            n = _kernel_copy(src_fd, self.fd, offset, count)
        except OSError as exc:
            raise _os_error(exc, f"copying into {self.target.name}") from exc
        start_writeback(self.fd, self.offset, n)
        self.offset += n
        return n

    def read_back(self, offset: int, view: memoryview) -> int:
        """Read written bytes back (what the file system now holds, not what was handed to it)."""
        if self._reader is None:
            self._reader = os.open(self.tmp, os.O_RDONLY)
        done = 0
        while done < len(view):
            n = os.preadv(self._reader, [view[done:]], offset + done)
            if not n:
                break
            done += n
        return done

    def _close_reader(self) -> None:
        if self._reader is not None:
            os.close(self._reader)
            self._reader = None

    def commit(self) -> None:
        assert self.fd is not None
        self._close_reader()
        try:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            self.target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, self.target)
            _fsync_dir(self.target.parent)
        except OSError as exc:
            self.abort()
            raise _os_error(exc, f"storing {self.target.name}") from exc

    def abort(self) -> None:
        self._close_reader()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.tmp.unlink(missing_ok=True)


class LocalStorage(StorageBackend):
    protocol: ClassVar[str] = "file"
    description: ClassVar[str] = "a folder on this machine (or a mounted file system)"

    def __init__(self, location: str, options: Mapping[str, Any], credential: Mapping[str, Any] | None) -> None:
        super().__init__(location, options, credential)
        self.root = Path(location)
        if not self.root.is_absolute():
            raise InvalidInput(f"location: a file endpoint needs an absolute folder path, not {location!r}")

    def _path(self, path: str) -> Path:
        full = (self.root / path).resolve()
        if not full.is_relative_to(self.root.resolve()) or path.startswith(INCOMING):
            raise InvalidInput(f"path {path!r} leaves the endpoint's folder")
        return full

    def _need_root(self) -> None:
        if not self.root.is_dir():
            raise StorageUnavailable(f"the endpoint folder {self.root} does not exist (vanished or unmounted)")

    def writer(self, path: str, *, size_hint: int | None = None) -> Writer:
        self._need_root()
        free = self.free_bytes()
        if size_hint is not None and free is not None and size_hint > free:
            raise StorageFull(f"{self.root} has {free} bytes free; {size_hint} are needed")
        return LocalWriter(self.root, self._path(path))

    def read(self, path: str, *, offset: int = 0, length: int | None = None,
             chunk_size: int = CHUNK) -> Iterator[bytes]:
        self._need_root()
        try:
            fh = open(self._path(path), "rb")  # noqa: SIM115 (closed below, also when the consumer stops)
        except FileNotFoundError:
            raise StorageUnavailable(f"{path} is missing from {self.root}") from None
        with fh:
            fh.seek(offset)
            left = length
            while left is None or left > 0:
                chunk = fh.read(chunk_size if left is None else min(chunk_size, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def copy_in(self, source: LocalStorage, path: str, *, size_hint: int | None, pool: BufferPool,
                consume: Callable[[memoryview], None]) -> LocalWriter:
        """Copy ``path`` from another local endpoint inside the kernel while the bytes already copied are read
        back (into ``pool`` buffers, handed to ``consume``, which releases them) — the read-back of one chunk
        overlaps the copy of the next. Returns the uncommitted writer: the caller checks, then commits."""
        source._need_root()
        try:
            src_fd = os.open(source._path(path), os.O_RDONLY)
        except FileNotFoundError:
            raise StorageUnavailable(f"{path} is missing from {source.root}") from None
        writer = self.writer(path, size_hint=size_hint)
        assert isinstance(writer, LocalWriter)
        copied: queue.Queue[int | BaseException | None] = queue.Queue(maxsize=_COPY_AHEAD)
        stop = threading.Event()

        def tell(item: int | BaseException | None) -> None:
            while not stop.is_set():  # the copy runs at most _COPY_AHEAD chunks ahead of the read-back
                try:
                    copied.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def copy() -> None:
            offset = 0
            try:
                while not stop.is_set() and (n := writer.copy_from(src_fd, offset, pool.size)):
                    offset += n
                    tell(n)
                tell(None)
            except BaseException as exc:
                tell(exc)

        thread = threading.Thread(target=copy, name="lake-copy", daemon=True)
        thread.start()
        try:
            offset = 0
            while (item := copied.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                buffer = pool.take()
                n = writer.read_back(offset, memoryview(buffer)[:item])
                if n != item:
                    raise StorageUnavailable(f"{path} on {self.root} shrank while it was being copied")
                offset += n
                consume(memoryview(buffer)[:n])
        except BaseException:
            stop.set()
            thread.join()
            writer.abort()
            raise
        finally:
            thread.join()
            os.close(src_fd)
        return writer

    def size(self, path: str) -> int | None:
        self._need_root()
        try:
            return self._path(path).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, path: str) -> None:
        self._need_root()
        self._path(path).unlink(missing_ok=True)

    def check(self) -> None:
        self._need_root()
        if not os.access(self.root, os.W_OK | os.R_OK):
            raise StorageUnavailable(f"the engine may not read and write {self.root}")

    def open_file(self, path: str) -> IO[bytes]:
        return open(self._path(path), "rb")

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.root).free
        except OSError:
            return None

    def cleanup(self, *, older_than: timedelta) -> int:
        incoming = self.root / INCOMING
        if not incoming.is_dir():
            return 0
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for part in incoming.iterdir():
            try:
                if part.stat().st_mtime <= cutoff:
                    part.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
