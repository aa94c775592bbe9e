"""Find an app's training task: the model ``entrypoint`` of its manifest, imported from the app's package."""

from __future__ import annotations

from pathlib import Path

from twinengine.ml.trainer import TrainingTask
from twinengine.workflows.apps import _load_package

__all__ = ["load_task"]


def load_task(folder: Path, package: str, entrypoint: str) -> TrainingTask:
    """Import ``package`` from ``folder`` (kept apart from other versions) and call ``module:function``."""
    modules = _load_package(folder, package)
    module_name, _, attr = entrypoint.partition(":")
    if module_name not in modules:
        raise ValueError(f"model entrypoint {entrypoint!r}: module {module_name!r} is not in package {package!r}")
    factory = getattr(modules[module_name], attr, None)
    if not callable(factory):
        raise ValueError(f"model entrypoint {entrypoint!r} is not a function of the app")
    task = factory()
    if not isinstance(task, TrainingTask):
        raise ValueError(f"model entrypoint {entrypoint!r} returned {type(task).__name__}, not a TrainingTask")
    return task
