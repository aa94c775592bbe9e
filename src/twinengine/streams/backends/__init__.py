"""Stream log backends: built-ins plus whatever is registered under the ``twinengine.streams`` entry points.

A backend whose dependency or module is broken is skipped with a warning, never breaking the engine; an
unknown name raises an error that lists the installed ones.
"""

from __future__ import annotations

import importlib
import warnings
from functools import cache, lru_cache
from importlib.metadata import entry_points

from twinengine.errors import InvalidInput
from twinengine.streams.backends.base import Sealed, StreamLog

__all__ = ["Sealed", "StreamLog", "get_backend", "list_backends", "refresh_backends"]

GROUP = "twinengine.streams"
BUILTIN = {"local": ("twinengine.streams.backends.local", "LocalLog"),
           "nats": ("twinengine.streams.backends.nats", "NatsLog"),
           "memory": ("twinengine.streams.backends.memory", "MemoryLog")}


def _load(name: str, module: str, attr: str) -> type[StreamLog] | None:
    try:
        cls = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # a broken plugin must not break the host
        warnings.warn(f"stream backend {name!r} ({module}:{attr}) cannot be loaded: {exc}", RuntimeWarning,
                      stacklevel=3)
        return None
    if not (isinstance(cls, type) and issubclass(cls, StreamLog)):
        warnings.warn(f"stream backend {name!r} is not a StreamLog subclass; ignored", RuntimeWarning, stacklevel=3)
        return None
    return cls


@lru_cache(maxsize=1)
def _sources() -> dict[str, tuple[str, str]]:
    """Where each backend is, by name: built-ins first, then entry points (which may add or replace)."""
    sources = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        module, _, attr = ep.value.partition(":")
        sources[ep.name] = (module, attr)
    return sources


@cache
def _backend(name: str) -> type[StreamLog] | None:
    source = _sources().get(name)
    return None if source is None else _load(name, *source)


@lru_cache(maxsize=1)
def list_backends() -> dict[str, type[StreamLog]]:
    """Every usable backend by name (each one imported: the NATS client too)."""
    return {name: cls for name in _sources() if (cls := _backend(name)) is not None}


def refresh_backends() -> None:
    for cached in (_sources, _backend, list_backends):
        cached.cache_clear()


def get_backend(name: str) -> type[StreamLog]:
    """The backend named, importing only it (an engine on the local log never loads the NATS client)."""
    cls = _backend(name)
    if cls is None:
        raise InvalidInput(f"stream_backend: no stream backend named {name!r}; installed: "
                           f"{', '.join(sorted(list_backends()))} (see docs/streams.md)")
    return cls
