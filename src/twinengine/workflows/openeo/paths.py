"""openEO clients and the official test suite join URLs into ``/openeo/1.2//jobs/{id}``: collapse the slashes."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["CollapseSlashes"]

_SLASHES = re.compile(r"/{2,}")


class CollapseSlashes:
    """Rewrites repeated slashes in request paths under ``/openeo/`` before routing (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/openeo/") and "//" in scope["path"]:
            path = _SLASHES.sub("/", scope["path"])
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)
