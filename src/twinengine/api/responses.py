"""Responses whose body is already in memory as consecutive pieces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["PiecesResponse"]


class PiecesResponse(Response):
    """A complete body sent piece by piece under one Content-Length, instead of joined first: joining a
    ten-megabyte answer copies it into fresh memory, which costs more than encoding a fifth of it. Unlike a
    streamed response, the status and length are only sent once every piece exists, so a failure while
    encoding is still an error response, never a truncated 200."""

    def __init__(self, pieces: Sequence[bytes | memoryview], *, status_code: int = 200,
                 headers: Mapping[str, str] | None = None, media_type: str | None = None) -> None:
        self.pieces = [piece for piece in pieces if len(piece)]
        length = sum(len(piece) for piece in self.pieces)
        super().__init__(b"", status_code=status_code, headers={**(headers or {}), "content-length": str(length)},
                         media_type=media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        last = len(self.pieces) - 1
        for k, piece in enumerate(self.pieces):
            await send({"type": "http.response.body", "body": piece, "more_body": k < last})
        if not self.pieces:
            await send({"type": "http.response.body", "body": b""})
        if self.background is not None:
            await self.background()
