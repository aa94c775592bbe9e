"""Find an app's training task: the model ``entrypoint`` of its manifest, imported from the app's package.

Training still imports app code inside the engine (the next step moves training tasks into the app's
sandboxed workers, like functions and processes already are).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

from twinengine.catalog.models import AppVersion
from twinengine.ml.task import TrainingTask
from twinengine.store.blobs import BlobStore

__all__ = ["load_task", "unpacked_version"]

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


def unpacked_version(blobs: BlobStore, row: AppVersion, root: Path) -> Path:
    folder = root / f"{row.name}-{row.version}-{row.archive_sha256[:12]}"
    if not folder.exists():
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
        with tarfile.open(fileobj=io.BytesIO(blobs.get(row.archive_sha256)), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        with contextlib.suppress(OSError):  # another thread unpacked it first
            tmp.rename(folder)
    return folder




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
