"""Find an app's training task in this process: the model ``entrypoint`` of its manifest, imported from the
app's folder, kept apart from other versions of the same package.

For a developer's own process (tests, notebooks, ``twin app test`` helpers): the engine itself never does this,
its training runs in the app's sandboxed workers (:mod:`twinengine.ml.task_host`).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import threading
from pathlib import Path
from typing import Any

from twinengine.app.training import TrainingTask, task_from

__all__ = ["load_task"]

_IMPORT_LOCK = threading.Lock()


def _load_package(folder: Path, package: str) -> dict[str, Any]:
    """Import ``package`` from ``folder``; return its modules and take them out of ``sys.modules``, so that
    another version of the same package can be loaded beside it."""
    with _IMPORT_LOCK:
        saved = {k: v for k, v in sys.modules.items() if k == package or k.startswith(package + ".")}
        for name in saved:
            del sys.modules[name]
        sys.path.insert(0, str(folder))
        try:
            importlib.invalidate_caches()
            root = importlib.import_module(package)
            for info in pkgutil.walk_packages(root.__path__, package + "."):
                importlib.import_module(info.name)
            loaded = {k: v for k, v in sys.modules.items() if k == package or k.startswith(package + ".")}
        finally:
            sys.path.remove(str(folder))
            for name in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
                del sys.modules[name]
            sys.modules.update(saved)
    return loaded


def load_task(folder: Path, package: str, entrypoint: str) -> TrainingTask:
    """Import ``package`` from ``folder`` (kept apart from other versions) and call ``module:function``."""
    modules = _load_package(folder, package)
    module_name, _, attr = entrypoint.partition(":")
    if module_name not in modules:
        raise ValueError(f"model entrypoint {entrypoint!r}: module {module_name!r} is not in package {package!r}")
    return task_from(getattr(modules[module_name], attr, None), entrypoint)
