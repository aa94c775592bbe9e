"""Endpoints on a local (or mounted) folder: temp file in ``<root>/.incoming``, fsync, rename, fsync of the
folder. Interrupted writes leave only files in ``.incoming``, which ``cleanup`` removes."""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, ClassVar

from twinengine.errors import InvalidInput, StorageFull, StorageUnavailable
from twinengine.lake.storage.base import CHUNK, StorageBackend, Writer

__all__ = ["LocalStorage"]

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


class _LocalWriter(Writer):
    def __init__(self, root: Path, target: Path) -> None:
        self.target = target
        self.tmp = root / INCOMING / f"{uuid.uuid4().hex}.part"
        try:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self.fh: IO[bytes] | None = open(self.tmp, "xb")  # noqa: SIM115 (closed in commit/abort)
        except OSError as exc:
            raise _os_error(exc, f"cannot write to {root}") from exc

    def write(self, chunk: bytes | memoryview) -> None:
        assert self.fh is not None
        try:
            self.fh.write(chunk)
        except OSError as exc:
            self.abort()
            raise _os_error(exc, f"writing {self.target.name}") from exc

    def commit(self) -> None:
        assert self.fh is not None
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            self.fh = None
            self.target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, self.target)
            _fsync_dir(self.target.parent)
        except OSError as exc:
            self.abort()
            raise _os_error(exc, f"storing {self.target.name}") from exc

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
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
        return _LocalWriter(self.root, self._path(path))

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
