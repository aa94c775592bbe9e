"""The storage interface every endpoint protocol implements: durable writes, ranged reads, deletes.

A write is all-or-nothing: ``Writer.commit()`` returns only once the bytes are durable under their final path
(temp file + fsync + rename, or a completed multipart upload); ``abort()`` leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from types import TracebackType
from typing import IO, Any, ClassVar

__all__ = ["CHUNK", "StorageBackend", "Writer"]

CHUNK = 4 * 1024 * 1024


class Writer:
    """Bytes on their way to ``path``; use as a context manager (aborts on error unless committed)."""

    def write(self, chunk: bytes | memoryview) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()


class StorageBackend:
    """One endpoint's storage. ``location`` is protocol-specific (a folder; ``bucket/prefix``); ``options`` are
    non-secret settings (an S3 endpoint URL); ``credential`` the decrypted secret, or None."""

    protocol: ClassVar[str] = "abstract"
    description: ClassVar[str] = ""

    def __init__(self, location: str, options: Mapping[str, Any], credential: Mapping[str, Any] | None) -> None:
        self.location = location
        self.options = dict(options)
        self.credential = dict(credential) if credential else None

    def writer(self, path: str, *, size_hint: int | None = None) -> Writer:
        raise NotImplementedError

    def read(self, path: str, *, offset: int = 0, length: int | None = None,
             chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Yield the bytes of ``path`` from ``offset`` (``length`` bytes, or to the end)."""
        raise NotImplementedError

    def size(self, path: str) -> int | None:
        """The size of ``path``, or None when it does not exist."""
        raise NotImplementedError

    def delete(self, path: str) -> None:
        """Remove ``path``; a missing path is not an error (deletes are retried)."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise StorageUnavailable unless the storage is reachable with this credential."""
        raise NotImplementedError

    def open_file(self, path: str) -> IO[bytes]:
        """A seekable binary file object (what xarray's engines open lazily)."""
        raise NotImplementedError

    def free_bytes(self) -> int | None:
        """Space left on the storage, when the protocol can tell."""
        return None

    def cleanup(self, *, older_than: timedelta) -> int:
        """Remove leftovers of interrupted writes older than ``older_than``; returns how many."""
        return 0
