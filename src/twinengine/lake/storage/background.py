"""Overlap writing with checksumming: a writer thread drains a short queue of chunks while the caller reads and
hashes the next ones (hashlib, zlib and file writes all release the GIL)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from twinengine.lake.storage.base import Writer

__all__ = ["BackgroundWriter"]

_DONE = object()


class BackgroundWriter(Writer):
    """Wraps a ``Writer``; an error in the thread surfaces on the next ``write``, ``finish`` or ``commit``.
    ``on_written`` runs in the thread after each chunk (the adler32 of the bytes being written)."""

    def __init__(self, inner: Writer, *, depth: int = 4,
                 on_written: Callable[[bytes | memoryview], None] | None = None) -> None:
        self.inner = inner
        self._on_written = on_written
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lake-writer", daemon=True)
        self._thread.start()
        self._finished = False

    def __enter__(self) -> BackgroundWriter:
        return self

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is _DONE:
                return
            if self._error is None:
                try:
                    self.inner.write(chunk)  # type: ignore[arg-type]
                    if self._on_written is not None:
                        self._on_written(chunk)  # type: ignore[arg-type]
                except BaseException as exc:
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, chunk: bytes | memoryview) -> None:
        self._raise()
        self._queue.put(chunk)

    def _drain(self) -> None:
        if not self._finished:
            self._finished = True
            self._queue.put(_DONE)
            self._thread.join()

    def finish(self) -> None:
        """Wait until every chunk is written (and ``on_written`` ran); raise the thread's error if any."""
        self._drain()
        self._raise()

    def commit(self) -> None:
        self.finish()
        self.inner.commit()

    def abort(self) -> None:
        self._drain()
        self.inner.abort()
