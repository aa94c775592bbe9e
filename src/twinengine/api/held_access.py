"""The access of a connection that outlives a request (a web socket producer, a server-sent event stream),
checked again while the connection lasts.

A request is authorised once, when it arrives; a connection may stay open for days. Checked only at its
start, a producer kept appending and a subscriber kept receiving after their token was revoked or had
expired, or after the grant that let them in was withdrawn. ``HeldAccess.check`` verifies the token again
(from the verdicts of the last ``token_recheck``, so at most once in that interval per connection) and runs
the connection's own permission check in a short read-only unit of work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import anyio
from fastapi import Request
from fastapi.security import HTTPBearer
from fastapi.sse import ServerSentEvent
from sqlalchemy.orm import Session

from twinengine.api.cookies import request_token
from twinengine.api.deps import principal_of
from twinengine.auth.principal import Principal
from twinengine.errors import TwinEngineError
from twinengine.runtime import Runtime

__all__ = ["HeldAccess", "ended_by"]

_bearer = HTTPBearer(auto_error=False)


class HeldAccess:
    """``await access.check()`` raises the engine's error (``TokenInvalid``, ``PermissionDenied``,
    ``TwinNotFound``...) once the connection's caller may no longer do what it does."""

    def __init__(self, runtime: Runtime, token: str | None, allowed: Callable[[Session, Principal], object]) -> None:
        self.runtime, self.token, self.allowed = runtime, token, allowed
        self.interval = runtime.settings.token_recheck.total_seconds()
        self._next = time.monotonic() + self.interval

    @classmethod
    async def of_request(cls, request: Request, runtime: Runtime,
                         allowed: Callable[[Session, Principal], object]) -> HeldAccess:
        """The access of an event stream, by the token (or session cookie) its request came with."""
        return cls(runtime, request_token(request, await _bearer(request)), allowed)

    async def check(self) -> Principal | None:
        """The caller, checked again when the interval has passed since the last check (None: not yet due)."""
        if time.monotonic() < self._next:
            return None
        self._next = time.monotonic() + self.interval
        principal = await principal_of(self.runtime, self.token)

        def allowed() -> None:
            with self.runtime.db.session(readonly=True) as session:
                self.allowed(session, principal)

        await anyio.to_thread.run_sync(allowed)
        return principal


def ended_by(error: TwinEngineError) -> ServerSentEvent:
    """The last event of a stream whose caller may no longer read it."""
    return ServerSentEvent(raw_data=json.dumps(error.to_dict()), event="error")
