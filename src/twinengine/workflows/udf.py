"""``run_udf``: a user's Python code, run in a sandboxed worker of its own with a time and memory limit.

The data goes to the worker through its pipe, the worker runs the code as a module and calls
``apply_datacube(cube, context)`` (openEO UDF convention) or ``udf(data, context)``, and the result comes back
as safe values (JSON, npy arrays, xarray objects built from them): never a pickle. A UDF that loops, leaks
memory, kills itself or returns something else fails its node, never the engine.
"""

from __future__ import annotations

from typing import Any

from twinengine.compute.metering import charge_worker
from twinengine.errors import ProcessFailed
from twinengine.workers.process import WorkerCrashed, WorkerError, WorkerOutOfMemory, WorkerTimeout
from twinengine.workers.protocol import ProtocolError

__all__ = ["run_udf_process"]


def run_udf_process(data: Any, code: str, context: Any, *, timeout: float, memory_bytes: int) -> Any:
    """Run the UDF in a fresh sandboxed worker (the run's ``workers`` service, else one from the settings)."""
    from twinengine.workers.service import Workers, default_workers
    from twinengine.workflows.context import _CURRENT
    from twinengine.workflows.evaluate import Canceled

    ctx = _CURRENT.get()
    workers = ctx.services.get("workers") if ctx is not None else None
    if not isinstance(workers, Workers):
        workers = default_workers()
    interrupt = ctx.interrupt if ctx is not None else None  # a run canceled mid-UDF stops it at once
    try:
        return workers.run_udf(data, code, context, timeout=timeout, memory_bytes=memory_bytes, cpu=charge_worker,
                               interrupt=interrupt)
    except WorkerTimeout:
        raise ProcessFailed(f"run_udf: the UDF did not finish within {timeout:g} s and was stopped") from None
    except WorkerError as exc:
        raise ProcessFailed(f"run_udf: the UDF raised {exc.remote[:300]}\n{exc.trace[-400:]}") from None
    except WorkerOutOfMemory as exc:  # its processes together, forks and threads included
        raise ProcessFailed(f"run_udf: the UDF ran out of memory: its processes together went over "
                            f"udf_memory_bytes ({exc.limit} bytes) and were stopped") from None
    except WorkerCrashed as exc:
        if interrupt is not None and interrupt.fired:
            raise Canceled() from None
        raise ProcessFailed(f"run_udf: {exc}") from None
    except ProtocolError as exc:
        raise ProcessFailed(f"run_udf: the UDF's result cannot be taken back: {exc}") from None
