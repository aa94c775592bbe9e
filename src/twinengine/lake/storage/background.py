"""Overlap writing with checksumming: a writer thread drains a short queue of chunks while the caller reads and
hashes the next ones (hashlib, zlib and file writes all release the GIL)."""

from __future__ import annotations

import queue
import threading

from twinengine.lake.storage.base import Writer

__all__ = ["BackgroundWriter"]

_DONE = object()


class BackgroundWriter(Writer):
    """Wraps a ``Writer``; an error in the thread surfaces on the next ``write`` or on ``commit``."""

    def __init__(self, inner: Writer, *, depth: int = 4) -> None:
        self.inner = inner
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="lake-writer", daemon=True)
        self._thread.start()
        self._finished = False

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is _DONE:
                return
            if self._error is None:
                try:
                    self.inner.write(chunk)  # type: ignore[arg-type]
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

    def commit(self) -> None:
        self._drain()
        self._raise()
        self.inner.commit()

    def abort(self) -> None:
        self._drain()
        self.inner.abort()
