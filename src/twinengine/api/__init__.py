"""FastAPI assembly: ``create_app(settings)`` builds the engine's HTTP surface from a runtime.

``create_app`` is imported on first use, so that ``twinengine.api.starting`` (what ``twin serve`` listens
with first) does not import the whole API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twinengine.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from twinengine.api.app import create_app

        return create_app
    raise AttributeError(f"module 'twinengine.api' has no attribute {name!r}")
