"""The GPUs a worker holds, read from outside it through NVML (NVIDIA's management library, the
``nvidia-ml-py`` package of the ``ml`` extra).

The driver lists the processes that hold a context on each GPU by their pids on the host, so code in the
sandbox can neither hide nor forge what it holds. A call's GPU-seconds are its wall seconds times the GPUs the
worker's processes held a context on (the allocation, as Slurm's ``gres/gpu`` and EGI's GPU accounting records
count it), not how busy the GPUs were. Where NVML, the library or a GPU is missing, a worker holds none and
nothing is asked again: the answer is found once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["GpuHolders", "gpu_holders"]


class GpuHolders:
    """Which processes hold a context on which GPU, asked of NVML (``library``: the ``pynvml`` module, or a
    stand-in with its functions; None: no GPU here)."""

    def __init__(self, library: Any | None) -> None:
        self._nvml = library
        self._handles: list[Any] = []
        self._lock = threading.Lock()
        if library is None:
            return
        try:
            library.nvmlInit()
            self._handles = [library.nvmlDeviceGetHandleByIndex(i) for i in range(library.nvmlDeviceGetCount())]
        except Exception:  # no driver, or the library's NVMLError: a machine without a usable GPU
            self._nvml, self._handles = None, []

    @property
    def count(self) -> int:
        """GPUs on this machine that NVML answers for (0: none, or no NVML)."""
        return len(self._handles)

    def held(self, pids: Iterable[int]) -> int:
        """On how many GPUs any of ``pids`` holds a context (compute or graphics)."""
        if not self._handles:
            return 0
        wanted = set(pids)
        nvml = self._nvml
        if not wanted or nvml is None:
            return 0
        held = 0
        with self._lock:  # NVML's handles are shared: one question at a time
            for handle in self._handles:
                for ask in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
                    try:
                        holders = {int(p.pid) for p in ask(handle)}
                    except Exception:  # the device went away, or this query is not supported on it
                        holders = set()
                    if holders & wanted:
                        held += 1
                        break
        return held


_FOUND: list[GpuHolders] = []
_FINDING = threading.Lock()


def gpu_holders() -> GpuHolders:
    """This process's ``GpuHolders`` (NVML initialised once, on first use)."""
    with _FINDING:
        if not _FOUND:
            _FOUND.append(GpuHolders(_load()))
        return _FOUND[0]


def _load() -> Any | None:
    try:
        import pynvml  # type: ignore[import-untyped,import-not-found,unused-ignore]  # nvidia-ml-py (ml extra)
    except ImportError:
        return None
    return pynvml
