"""App processes: DT developers declare Python functions as openEO processes with ``@app_process``.

Publishing an app indexes them: its package is imported in a sandboxed worker of the new version, which
answers the specs it found (a catalogue publish step). A run that names the app's namespace calls the
function in a warm worker of that version, with its arguments computed first, and takes back safe values.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from twinengine.app._process import SPEC_ATTR, app_process
from twinengine.catalog.manifest import Manifest
from twinengine.catalog.models import AppVersion
from twinengine.compute.metering import charge_worker, charge_worker_gpu
from twinengine.errors import Problem, ProcessFailed, ValidationFailed
from twinengine.store.blobs import BlobStore
from twinengine.store.engine import Database
from twinengine.workers.process import WorkerCrashed, WorkerError
from twinengine.workers.protocol import ProtocolError
from twinengine.workflows.models import AppProcess
from twinengine.workflows.registry import ProcessEntry

if TYPE_CHECKING:
    from twinengine.workers.apps import AppCode
    from twinengine.workers.service import AppWorkers

__all__ = ["SPEC_ATTR", "AppCodeError", "AppProcessIndex", "AppProcesses", "app_process", "read_app_file"]


class AppCodeError(Exception):
    """Raised in the engine when an app process raised in its worker (the message is its ``Type: message``)."""


def read_app_file(blobs: BlobStore, row: AppVersion, relpath: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(blobs.get(row.archive_sha256)), mode="r:gz") as tar:
        member = tar.extractfile(relpath)
        if member is None:
            raise FileNotFoundError(relpath)
        return member.read()


class AppProcessIndex:
    """Catalogue publish step: import the new version's package in a sandboxed worker (outside the store's
    write transaction) and record its ``@app_process`` functions under the app's namespace."""

    def __init__(self, code: AppCode) -> None:
        self.code = code

    def __call__(self, manifest: Manifest, archive: bytes) -> Callable[[Session, AppVersion], None]:
        from twinengine.workers.apps import import_app
        from twinengine.workers.envs import EnvironmentFailed

        try:
            app = self.code.get(hashlib.sha256(archive).hexdigest(), manifest, archive)
        except EnvironmentFailed as exc:
            raise ValidationFailed([Problem("requires", str(exc))]) from None
        found = import_app(app, manifest)  # its entrypoints checked as well

        def record(session: Session, row: AppVersion) -> None:
            # a development version published again replaces what its old files declared
            session.execute(delete(AppProcess).where(AppProcess.app_id == row.id))
            for entry in found:
                spec = dict(entry["spec"])
                spec["namespace"] = row.name
                session.add(AppProcess(app_id=row.id, app_name=row.name, app_version=row.version,
                                       process_id=str(entry["id"]), function=str(entry["function"]), spec=spec))
            session.flush()

        return record


class AppProcesses:
    """The registry's source of app processes: specs from the index, calls into the version's workers."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db, self.blobs = db, blobs
        self.code: AppCode | None = None  # set by the runtime (the workers that run app code)

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
        """The process, read in the caller's unit of work if it has one open (a graph checked as its run is
        written: no second connection); the version's workers are reached at its first call (they may build
        the app's environment: never while a transaction waits, ``store.guard``)."""
        with self.db.reading() as session:
            row = self._row(session, namespace, version)
            if row is None:
                return None
            record = session.scalar(select(AppProcess).where(AppProcess.app_id == row.id,
                                                             AppProcess.process_id == process_id))
            if record is None:
                return None
            spec, function = dict(record.spec), record.function
            sha, manifest, name, found = row.archive_sha256, row.manifest, row.name, row.version
        code = self.code
        if code is None:
            raise RuntimeError("app processes need the runtime's workers")
        parsed = Manifest.model_validate(manifest)
        return ProcessEntry(id=process_id, spec=spec,
                            implementation=_in_worker(lambda: code.get(sha, parsed), function, process_id),
                            namespace=name, cacheable=bool(spec.get("x-cacheable", True)), version=found)

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


def _in_worker(workers: Callable[[], AppWorkers], function: str, process_id: str) -> Callable[..., Any]:
    """App code gets concrete data: lazy cubes in its arguments are computed through the run's executor,
    then sent to a warm worker of the app version (``workers()``); its result comes back as safe values."""
    import xarray as xr

    from twinengine.workflows.context import active, current
    from twinengine.workflows.evaluate import Canceled

    def call(**kwargs: Any) -> Any:
        lazy = [k for k, v in kwargs.items() if isinstance(v, xr.DataArray | xr.Dataset)]
        if lazy:
            values = current().compute(*[kwargs[k] for k in lazy])
            kwargs.update(zip(lazy, values, strict=True))
        run = active()
        interrupt = run.interrupt if run is not None else None
        try:
            return workers().process(function, kwargs, interrupt=interrupt, cpu=charge_worker,
                                     gpu=charge_worker_gpu)
        except WorkerError as exc:
            place = exc.place
            raise AppCodeError(f"{exc.remote} (at {place})" if place else exc.remote) from None
        except (WorkerCrashed, ProtocolError) as exc:  # a timeout too; or the run was canceled meanwhile
            if interrupt is not None and interrupt.fired:
                raise Canceled() from None
            raise ProcessFailed(f"{process_id}: {exc}") from None

    call.__name__ = process_id
    return call


def _unloaded(**_kwargs: Any) -> Any:
    raise RuntimeError("listing entries are not callable; resolve the process with find()")
