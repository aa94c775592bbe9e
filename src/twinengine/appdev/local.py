"""A throw-away engine for one app folder: a temporary data dir with SQLite, the app published, one twin.

``twin app test`` and ``twin app run`` use it, so an app is tried by the engine's own services (catalogue
publish, twins, streams, workflows, training) without a server and without touching any other data.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from twinengine.catalog.manifest import Manifest
from twinengine.config import Settings
from twinengine.errors import Problem, ValidationFailed
from twinengine.runtime import Runtime

__all__ = ["PARAMETERS", "LocalEngine", "read_parameters", "read_samples", "twin_parameters"]

SAMPLES = "data"  # sample records: data/<stream>.jsonl; the local twin's parameters: data/parameters.json
PARAMETERS = f"{SAMPLES}/parameters.json"  # inside the app folder, as the templates ship it


def read_parameters(folder: Path) -> dict[str, Any]:
    """The local twin's parameters as ``data/parameters.json`` writes them ({} without the file)."""
    path = folder / PARAMETERS
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed.one(PARAMETERS, f"not JSON text ({exc})") from None
    if not isinstance(data, dict):
        raise ValidationFailed.one(PARAMETERS, "the twin's parameters must be a JSON object")
    return data


def twin_parameters(folder: Path, manifest: Manifest) -> dict[str, Any]:
    """The local twin's parameters, checked against the app's schema: a missing or unfit
    ``data/parameters.json`` is named with what to put in it, not only the schema's complaint."""
    from twinengine.twins.validation import check_parameters

    values = read_parameters(folder)
    _filled, problems = check_parameters(manifest, values)
    if not problems:
        return values
    if not (folder / PARAMETERS).is_file():
        required = [str(key) for key in manifest.parameters.get("required") or []]
        example = json.dumps(dict.fromkeys(required, "..."))
        raise ValidationFailed([Problem(PARAMETERS, (
            f"missing, and a twin of {manifest.name} needs parameters its schema has no default for "
            f"({'; '.join(map(str, problems))}): add {PARAMETERS} with a JSON object of them, e.g. {example}"))],
            message=f"{PARAMETERS} is missing from the app folder {folder}")
    raise ValidationFailed([Problem(PARAMETERS, str(problem)) for problem in problems])


def read_samples(folder: Path, stream: str) -> list[dict[str, Any]]:
    """The sample records of ``stream`` (JSON lines), or none."""
    path = folder / SAMPLES / f"{stream}.jsonl"
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
    return rows


class LocalEngine:
    """``with LocalEngine(folder) as local:`` a started runtime on a temporary data dir (removed on exit),
    with the admin token in ``local.token``; ``publish()`` and ``create_twin()`` go through the services."""

    def __init__(self, folder: Path, *, twin_name: str = "local", **settings: Any) -> None:
        self.folder, self.twin_name = folder.resolve(), twin_name
        self._overrides = settings
        self._tmp: Path | None = None
        self.runtime: Runtime | None = None
        self.token: str | None = None

    def __enter__(self) -> LocalEngine:
        self._tmp = Path(tempfile.mkdtemp(prefix="twin-app-"))
        # Everything that could point at another engine's data is set here, not read from TWIN_* or twin.toml.
        values: dict[str, Any] = {"data_dir": self._tmp / "data", "database_url": None, "collections_dir": None,
                                  "streams_dir": None, "stream_backend": "local", "executor": "local",
                                  "dask_address": None, "lake_endpoint": None, "mlflow_uri": None, "mqtt_url": None,
                                  "oidc_providers": [], "lake_daemons": False, "slurm_jobs": 0}
        values.update(self._overrides)
        try:
            self.runtime = Runtime.from_settings(Settings(**values))
            self.token = self.runtime.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @property
    def rt(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("the local engine is not started")
        return self.runtime

    def publish(self) -> tuple[str, Manifest]:
        """Publish the folder as the catalogue does for an upload; returns the archive sha256 and manifest."""
        from twinengine.auth.principal import SYSTEM
        from twinengine.catalog import service as catalog
        from twinengine.catalog.archive import pack

        rt = self.rt
        with rt.db.session() as session:
            done = catalog.publish(session, rt.blobs, principal=SYSTEM, archive=pack(self.folder),
                                   max_archive_bytes=rt.settings.max_app_archive_bytes,
                                   max_unpacked_bytes=rt.settings.max_app_unpacked_bytes,
                                   max_manifest_bytes=rt.settings.max_manifest_bytes, steps=rt.publish_steps,
                                   db=rt.db)
            return done.row.archive_sha256, catalog.manifest_of(done.row)

    def create_twin(self, manifest: Manifest) -> str:
        """The local twin of the published app, with ``data/parameters.json``; returns its id."""
        from twinengine.auth.principal import SYSTEM
        from twinengine.twins import service as twins

        with self.rt.db.session() as session:
            twin = twins.create_twin(session, principal=SYSTEM, app=manifest.ref, name=self.twin_name,
                                     parameters=twin_parameters(self.folder, manifest))
            return twin.id

    def ingest_samples(self, manifest: Manifest) -> dict[str, int]:
        """Append each stream's sample records to the local twin's stream; returns how many per stream."""
        from twinengine.auth.principal import SYSTEM
        from twinengine.streams import service as streams

        counts = {}
        for stream in manifest.streams:
            rows = read_samples(self.folder, stream)
            if rows:
                with self.rt.db.session() as session:
                    streams.ingest_records(session, self.rt.streams, principal=SYSTEM, twin_ref=self.twin_name,
                                           stream=stream, items=rows)
            counts[stream] = len(rows)
        return counts
