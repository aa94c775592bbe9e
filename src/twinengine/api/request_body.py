"""A request's streamed body, read from a worker thread: the lake's uploads and the data space's pushes write it
with synchronous code (checksums while the bytes flow) that must not run on the event loop."""

from __future__ import annotations

from collections.abc import Iterator

import anyio.from_thread
from fastapi import Request

__all__ = ["body_chunks"]


def body_chunks(request: Request) -> Iterator[bytes]:
    """The body's chunks, for a worker thread started with ``anyio.to_thread``: each is awaited on the loop."""
    stream = request.stream().__aiter__()

    async def next_chunk() -> bytes:
        return await stream.__anext__()

    while True:
        try:
            chunk = anyio.from_thread.run(next_chunk)
        except StopAsyncIteration:
            return
        if chunk:
            yield chunk
