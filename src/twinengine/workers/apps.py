"""App versions as the engine runs them: their archive unpacked once, their environment, their workers.

``AppCode.get(sha256, manifest)`` answers the warm workers of one app version (archive checksum) in its
environment; the function worker, the workflow engine and publishing all go through it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinengine.catalog.archive import unpack
from twinengine.catalog.manifest import Manifest
from twinengine.catalog.validate import declared_entrypoints
from twinengine.errors import Problem, ValidationFailed
from twinengine.store.blobs import BlobStore
from twinengine.workers.images import WORKER, model_preload
from twinengine.workers.process import WorkerCrashed, WorkerError
from twinengine.workers.protocol import ProtocolError
from twinengine.workers.service import SERVING, AppWorkers, Workers

if TYPE_CHECKING:
    from twinengine.workers.envs import Environments

__all__ = ["AppCode", "import_app", "preloads", "unpacked"]


def unpacked(archive: bytes, sha256: str, root: Path) -> Path:
    """The archive's files under ``root/<sha256>``, unpacked once (atomically: a rename of a full folder)."""
    folder = root / sha256
    if not folder.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".unpack-"))
        unpack(archive, tmp, max_unpacked_bytes=1 << 31)
        os.chmod(tmp, 0o755)
        with contextlib.suppress(OSError):  # another thread or process got there first
            os.replace(tmp, folder)
    return folder


def preloads(manifest: Manifest) -> dict[str, tuple[str, ...]]:
    """What the version's warm images import once, per kind of work, as its manifest declares: every worker
    the engine's side of a call and numpy; function calls the framework of a model a function uses; training
    and serving the frameworks of its models (``pytorch``: PyTorch). Modules the app or its environment
    provide are left to each worker (``workers/_zygote.py``)."""
    used = {manifest.models[f.model].framework for f in manifest.functions.values()
            if f.model is not None and f.model in manifest.models}
    calls = model_preload(sorted(used)) if used else WORKER
    return {"calls": calls, "models": model_preload(sorted({m.framework for m in manifest.models.values()}))}


def import_app(app: AppWorkers, manifest: Manifest) -> list[dict[str, Any]]:
    """Import the version's package in one of its sandboxed workers, as publishing does: every entrypoint
    the manifest names must be callable as the engine calls it, and the package must import; returns its
    ``@app_process`` functions ([{id, function, spec}]). A failure is a ValidationFailed naming the manifest
    path (``functions.observe.entrypoint``) or the package."""
    try:
        unusable = app.check_entrypoints(declared_entrypoints(manifest))
        if unusable:
            raise ValidationFailed([Problem(loc, why) for loc, why in unusable])
        return app.index(manifest.package_name)
    except WorkerError as exc:
        raise ValidationFailed([Problem(manifest.package_name, f"importing the package failed: {exc.remote}")],
                               ) from None
    except (WorkerCrashed, ProtocolError, ValueError) as exc:
        raise ValidationFailed([Problem(manifest.package_name, f"importing the package failed: {exc}")]) from None


class AppCode:
    def __init__(self, workers: Workers, blobs: BlobStore, root: Path, envs: Environments | None = None) -> None:
        self.workers, self.blobs, self.root, self.envs = workers, blobs, root, envs
        self._apps: dict[str, AppWorkers] = {}
        self._lock = threading.Lock()

    def get(self, sha256: str, manifest: Manifest, archive: bytes | None = None) -> AppWorkers:
        """The workers of the app version whose archive is ``sha256`` (its bytes given, or read from blobs)."""
        with self._lock:
            known = self._apps.get(sha256)
        if known is not None:
            return known
        folder = self.root / sha256
        if not folder.is_dir():
            folder = unpacked(archive if archive is not None else self.blobs.get(sha256), sha256, self.root)
        env = self.envs.for_app(manifest, sha256) if self.envs is not None and manifest.requires else None
        cache = self.cache_of(sha256)
        app = self.workers.for_app((sha256, str(env)), label=f"{manifest.ref}", code=folder, env=env, cache=cache,
                                   image=manifest.image, preloads=preloads(manifest))
        with self._lock:
            return self._apps.setdefault(sha256, app)

    def cache_of(self, sha256: str) -> Path | None:
        """The app version's cache folder, beside the environments (so it outlives a throw-away data dir
        when they do, as for ``twin demo``), and its own: another app never sees it."""
        if self.envs is None:
            return None
        folder = self.envs.root / "caches" / sha256
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def retire(self, sha256: str) -> None:
        """The archive ``sha256`` was replaced (a development version published again): stop its idle
        workers. Calls in flight finish on the old code; their workers go back warm under the old checksum,
        where only that exact content would find them again."""
        with self._lock:
            app = self._apps.pop(sha256, None)
        if app is not None:
            self.workers.pool.discard(app.key)
            self.workers.pool.discard((app.key, SERVING))
            self.workers.images.discard(app.code)
