"""One lock for the engine's own deferred imports of large module graphs (route groups, warm-ups, the process
registry with openeo-processes-dask), so that no two threads import them at once.

Two threads importing overlapping graphs in different orders (one ``dask`` then ``dask.base``, the other the
reverse through another package) meet CPython's import deadlock avoidance, which hands one of them a module
still being initialised: ``cannot import name 'annotate' from partially initialized module 'dask.base'``, a
500 for the request that lost. Taken only where a deferred import starts (never by code a module runs as it
is imported), so it cannot wait on a module's own import lock in a cycle.
"""

from __future__ import annotations

import threading

__all__ = ["LOCK"]

LOCK = threading.RLock()
