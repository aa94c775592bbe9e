"""How every package builds its router: full path prefix and ``{tag}-{name}`` operation ids.

The route object a request is matched to is the package's own, so it must carry the final path (for
metrics labels) and the final operation id (for the audit log and generated clients) itself.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

__all__ = ["API_PREFIX", "api_router", "operation_id"]

API_PREFIX = "/api/v1"


def operation_id(route: APIRoute) -> str:
    tag = route.tags[0] if route.tags else "engine"
    return f"{tag}-{route.name}"


def api_router(path: str = "", *, tag: str | None = None, versioned: bool = True) -> APIRouter:
    """A router for ``/api/v1{path}`` (or ``{path}`` when not versioned) whose routes are tagged ``tag``."""
    prefix = (API_PREFIX if versioned else "") + path
    return APIRouter(prefix=prefix, tags=[tag] if tag else [], generate_unique_id_function=operation_id)
