"""twinengine: a digital twin engine for science.

``twinengine.Client`` is the Python SDK; ``twin`` is the command line; ``twinengine.api.create_app``
builds the HTTP server. ``Client`` is imported on first use, so the command line starts without the SDK's
schemas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinengine._version import __version__

if TYPE_CHECKING:
    from twinengine.client import Client

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from twinengine.client import Client

        return Client
    raise AttributeError(f"module 'twinengine' has no attribute {name!r}")
