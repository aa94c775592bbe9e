"""App processes: DT developers declare Python functions as openEO processes with ``@app_process``.

Publishing an app indexes them (a catalogue publish hook); a run that names the app's namespace loads the
version's package from its archive once and keeps its modules apart from other versions'.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import sys
import tarfile
import tempfile
import threading
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from twinengine.catalog.manifest import Manifest
from twinengine.catalog.models import AppVersion
from twinengine.errors import Problem, ValidationFailed
from twinengine.store.blobs import BlobStore
from twinengine.store.engine import Database
from twinengine.workflows.models import AppProcess
from twinengine.workflows.registry import ProcessEntry

__all__ = ["AppProcesses", "app_process", "index_app_processes", "read_app_file"]

SPEC_ATTR = "__openeo_process__"

_TYPES: dict[Any, dict[str, Any]] = {float: {"type": "number"}, int: {"type": "integer"}, str: {"type": "string"},
                                     bool: {"type": "boolean"}, list: {"type": "array"}, dict: {"type": "object"}}


def _schema(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation) or annotation
    if origin in _TYPES:
        return dict(_TYPES[origin])
    name = getattr(annotation, "__name__", str(annotation))
    if "DataArray" in name or "Dataset" in name:
        return {"type": "object", "subtype": "datacube"}
    return {}


def app_process(func: Callable[..., Any] | None = None, *, id: str | None = None, summary: str | None = None,
                description: str | None = None, parameters: dict[str, dict[str, Any]] | None = None,
                returns: dict[str, Any] | None = None, cacheable: bool = True) -> Any:
    """Declare a function of an app package as an openEO process (spec from its signature and docstring).

    ``parameters`` maps parameter names to extra spec fields (``schema``, ``description``) that override
    what the type hints say.
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(fn)
        doc = inspect.getdoc(fn) or ""
        params = []
        for name, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"app process {fn.__name__}: *args/**kwargs cannot be described as openEO "
                                "parameters")
            entry: dict[str, Any] = {"name": name, "description": name, "schema": _schema(hints.get(name))}
            if param.default is not inspect.Parameter.empty:
                entry["optional"] = True
                entry["default"] = param.default
            entry.update((parameters or {}).get(name, {}))
            params.append(entry)
        spec = {"id": id or fn.__name__, "summary": summary or (doc.splitlines()[0] if doc else fn.__name__),
                "description": description or doc or fn.__name__, "categories": ["app"], "parameters": params,
                "returns": returns or {"description": "result", "schema": _schema(hints.get("return"))},
                "x-cacheable": cacheable}
        setattr(fn, SPEC_ATTR, spec)
        return fn

    return wrap(func) if func is not None else wrap


def read_app_file(blobs: BlobStore, row: AppVersion, relpath: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(blobs.get(row.archive_sha256)), mode="r:gz") as tar:
        member = tar.extractfile(relpath)
        if member is None:
            raise FileNotFoundError(relpath)
        return member.read()


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
            for info in __import__("pkgutil").walk_packages(root.__path__, package + "."):
                importlib.import_module(info.name)
            loaded = {k: v for k, v in sys.modules.items() if k == package or k.startswith(package + ".")}
        finally:
            sys.path.remove(str(folder))
            for name in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
                del sys.modules[name]
            sys.modules.update(saved)
    return loaded


def _declared(modules: dict[str, Any]) -> dict[str, tuple[str, Callable[..., Any]]]:
    found: dict[str, tuple[str, Callable[..., Any]]] = {}
    for module_name, module in sorted(modules.items()):
        for attr, value in vars(module).items():
            spec = getattr(value, SPEC_ATTR, None)
            if callable(value) and isinstance(spec, dict) and getattr(value, "__module__", "") == module_name:
                found[str(spec["id"])] = (f"{module_name}:{attr}", value)
    return found


def _unpacked(blobs: BlobStore, row: AppVersion, root: Path) -> Path:
    folder = root / f"{row.name}-{row.version}-{row.archive_sha256[:12]}"
    if not folder.exists():
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
        with tarfile.open(fileobj=io.BytesIO(blobs.get(row.archive_sha256)), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        with contextlib.suppress(OSError):  # another thread unpacked it first
            tmp.rename(folder)
    return folder


def index_app_processes(session: Session, row: AppVersion, archive: bytes) -> None:
    """Catalogue publish hook: record the app's ``@app_process`` functions under its namespace."""
    manifest = Manifest.model_validate(row.manifest)
    with tempfile.TemporaryDirectory(prefix="twinapp-index-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        try:
            modules = _load_package(Path(tmp), manifest.package_name)
        except Exception as exc:
            raise ValidationFailed([Problem(manifest.package_name,
                                            f"importing the package failed: {exc}")]) from None
    for pid, (function, func) in _declared(modules).items():
        spec = dict(getattr(func, SPEC_ATTR))
        spec["namespace"] = row.name
        session.add(AppProcess(app_id=row.id, app_name=row.name, app_version=row.version, process_id=pid,
                               function=function, spec=spec))
    session.flush()


class AppProcesses:
    """The registry's source of app processes: specs from the index, functions loaded per app version."""

    def __init__(self, db: Database, blobs: BlobStore, root: Path) -> None:
        self.db, self.blobs, self.root = db, blobs, root
        self._loaded: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _row(self, session: Session, namespace: str, version: str | None) -> AppVersion | None:
        from twinengine.auth.principal import SYSTEM
        from twinengine.catalog import service as catalog
        from twinengine.errors import AppNotFound

        name, _, pinned = namespace.partition("@")
        try:
            return catalog.get_app_version(session, principal=SYSTEM, name=name, version=pinned or version)
        except AppNotFound:
            return None

    def find(self, namespace: str, process_id: str, version: str | None) -> ProcessEntry | None:
        with self.db.session(readonly=True) as session:
            row = self._row(session, namespace, version)
            if row is None:
                return None
            record = session.scalar(select(AppProcess).where(AppProcess.app_id == row.id,
                                                             AppProcess.process_id == process_id))
            if record is None:
                return None
            spec, function, key = dict(record.spec), record.function, (row.name, row.version)
            if key not in self._loaded:
                with self._lock:
                    if key not in self._loaded:
                        self.root.mkdir(parents=True, exist_ok=True)
                        folder = _unpacked(self.blobs, row, self.root)
                        self._loaded[key] = _load_package(folder, Manifest.model_validate(row.manifest).package_name)
        module_name, _, attr = function.partition(":")
        func = _materializing(getattr(self._loaded[key][module_name], attr))
        return ProcessEntry(id=process_id, spec=spec, implementation=func, namespace=row.name,
                            cacheable=bool(spec.get("x-cacheable", True)), version=row.version)

    def all(self) -> list[ProcessEntry]:
        with self.db.session(readonly=True) as session:
            rows = list(session.scalars(select(AppProcess).order_by(AppProcess.app_name, AppProcess.process_id)))
            latest: dict[tuple[str, str], AppProcess] = {}
            import semver

            for r in rows:
                k = (r.app_name, r.process_id)
                if k not in latest or semver.Version.parse(r.app_version) > semver.Version.parse(latest[k].app_version):
                    latest[k] = r
        return [ProcessEntry(id=r.process_id, spec=dict(r.spec) | {"x-version": r.app_version},
                             implementation=_unloaded, namespace=r.app_name, version=r.app_version)
                for r in latest.values()]


def _materializing(func: Callable[..., Any]) -> Callable[..., Any]:
    """App code gets concrete data: lazy cubes in its arguments are computed through the run's executor."""
    import xarray as xr

    from twinengine.workflows.context import current

    def call(**kwargs: Any) -> Any:
        lazy = [k for k, v in kwargs.items() if isinstance(v, xr.DataArray | xr.Dataset)]
        if lazy:
            values = current().compute(*[kwargs[k] for k in lazy])
            kwargs.update(zip(lazy, values, strict=True))
        return func(**kwargs)

    call.__name__ = getattr(func, "__name__", "app_process")
    return call


def _unloaded(**_kwargs: Any) -> Any:
    raise RuntimeError("listing entries are not callable; resolve the process with find()")
