"""The standard processes load on first use, beneath processes registered before that (start-up speed)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from twinengine.workflows.registry import ProcessEntry, ProcessRegistry


def _entry(pid: str, tag: str) -> ProcessEntry:
    def implementation(**_: Any) -> str:
        return tag

    return ProcessEntry(id=pid, spec={"id": pid, "summary": tag}, implementation=implementation)


def test_the_base_loads_once_on_first_use_and_never_overrides_a_registered_process() -> None:
    loads: list[int] = []

    def base() -> list[ProcessEntry]:
        loads.append(1)
        return [_entry("add", "standard"), _entry("predict", "standard")]

    registry = ProcessRegistry(base=base)
    registry.add(_entry("predict", "engine"))  # registered at start, before anything asked for a process
    assert loads == []
    view = registry.with_user_processes([])
    assert view.get("add").spec["summary"] == "standard"
    assert registry.get("predict").spec["summary"] == "engine"
    assert {e.id for e in registry.list()} == {"add", "predict"}
    assert loads == [1]  # once, whether the view or the registry asked first


def test_an_engine_module_import_leaves_openeo_processes_dask_unloaded() -> None:
    script = ("import sys; import twinengine.workflows.engine, twinengine.ml.drift; "
              "print('openeo_processes_dask' in sys.modules, 'scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "False"]
