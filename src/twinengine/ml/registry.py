"""The model registry behind our interface: MLflow tracking + model registry.

Embedded by default (SQLite ``<data_dir>/mlflow.db``, artifacts under ``<data_dir>/mlartifacts``, no server);
``TWIN_MLFLOW_URI`` points at an MLflow tracking server. Everything the engine records is plain MLflow runs,
params, metrics, tags, model versions and aliases, so the official ``MlflowClient`` reads it unchanged.

MLflow is imported, and its client opened, on the first call that needs them (about 3 s), not when the
engine imports this module; a served engine does both in the background once it answers (``ml.warmup``).
A new embedded registry is a copy of an empty one MLflow made once per MLflow version (``empty_registry``):
MLflow builds a new database by running its forty-odd migrations, about 1.5 s of CPU, where a copy takes 30 ms.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars inside the engine's output
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # nor its INFO lines (they would break `--json` output)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["AsyncMetricLogger", "ModelRegistry", "VersionInfo", "empty_registry", "registered_name"]

log = logging.getLogger("twinengine.ml")
logging.getLogger("mlflow").setLevel(logging.WARNING)

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str | None
    tags: dict[str, str]
    aliases: list[str]
    created_ms: int


def registered_name(twin_name: str, model: str) -> str:
    """One registered model per twin and model: ``<twin>.<model>``."""
    return f"{twin_name}.{model}"


def _cache_folder() -> Path | None:
    """This user's cache folder for twinengine (``$XDG_CACHE_HOME`` or ``~/.cache``), made private; None where
    there is none to write or it is not this user's own (a template another user could write is not used)."""
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.expanduser("~/.cache") if os.path.expanduser("~") != "~"
                                                 else "")
    if not base:
        return None
    folder = Path(base) / "twinengine"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return folder


def _template(cache: Path) -> Path:
    """An empty registry of the installed MLflow version in ``cache``, made by MLflow itself the first time."""
    import mlflow
    from mlflow.tracking import MlflowClient

    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.exists():
        with tempfile.TemporaryDirectory(dir=cache, prefix=".mlflow-") as folder:
            made = Path(folder) / "empty.db"
            MlflowClient(tracking_uri=f"sqlite:///{made}").search_experiments(max_results=1)
            os.replace(made, template)
    return template


def empty_registry(database: Path, artifact_root: Path) -> None:
    """Make ``database`` a new, empty MLflow registry, copied from this MLflow version's template, where it
    does not exist yet. The Default experiment's artifact folder is set to ``artifact_root/0`` (MLflow
    records the folder the creating process stood in). Where no template can be kept, MLflow makes it."""
    cache = None if database.exists() else _cache_folder()
    if cache is None:
        return
    try:
        template = _template(cache)
        database.parent.mkdir(parents=True, exist_ok=True)
        staged = database.with_name(f".{database.name}.{os.getpid()}.{threading.get_ident()}")
        shutil.copyfile(template, staged)
        try:
            with contextlib.closing(sqlite3.connect(staged)) as db, db:
                db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                           (str(artifact_root.resolve() / "0"),))
            with contextlib.suppress(FileExistsError):  # another engine made it meanwhile: keep theirs
                os.link(staged, database)
        finally:
            staged.unlink(missing_ok=True)
    except (OSError, sqlite3.Error) as exc:  # MLflow makes it from nothing instead
        log.debug("no registry template: %s", exc)


class ModelRegistry:
    """Runs, metrics, model files, versions and aliases; one instance per runtime (thread-safe client)."""

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self._client: MlflowClient | None = None
        self._opening = threading.Lock()
        self._lock = threading.Lock()

    @property
    def client(self) -> MlflowClient:
        """MLflow's client, imported and opened on first use (thread-safe)."""
        with self._opening:
            if self._client is None:
                from mlflow.tracking import MlflowClient

                if self.artifact_root is not None and self.tracking_uri.startswith("sqlite:///"):
                    empty_registry(Path(self.tracking_uri.removeprefix("sqlite:///")), self.artifact_root)
                self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            return self._client

    @classmethod
    def embedded(cls, data_dir: Path, uri: str | None = None) -> ModelRegistry:
        if uri and not uri.startswith("sqlite:"):
            return cls(uri)
        return cls(uri or f"sqlite:///{data_dir / 'mlflow.db'}", data_dir / "mlartifacts")

    # -- runs
    def experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        with self._lock:
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
            location = None
            if self.artifact_root is not None:
                self.artifact_root.mkdir(parents=True, exist_ok=True)
                location = (self.artifact_root / name).as_uri()
            try:
                return str(self.client.create_experiment(name, artifact_location=location))
            except MlflowException:  # created by another process meanwhile
                again = self.client.get_experiment_by_name(name)
                if again is None:
                    raise
                return str(again.experiment_id)

    def start_run(self, experiment: str, *, name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment(experiment), run_name=name, tags=tags)
        run_id = str(run.info.run_id)
        items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])
        return run_id

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_metrics(self, run_id: str, points: list[tuple[str, float, int, int]]) -> None:
        """(key, value, step, timestamp ms) points, sent 1000 at a time (MLflow's batch limit)."""
        from mlflow.entities import Metric

        metrics = [Metric(k, float(v), ts, step) for k, v, step, ts in points]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000])

    def end_run(self, run_id: str, *, ok: bool, killed: bool = False) -> None:
        """FINISHED, FAILED, or KILLED (stopped on request)."""
        self.client.set_terminated(run_id, status="KILLED" if killed else "FINISHED" if ok else "FAILED")

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]

    # -- model versions
    def register(self, name: str, run_id: str, folder: Path, *, tags: dict[str, str], description: str = "") -> str:
        """Keep ``folder`` (a model its flavour saved, in the app's worker) as the run's artifact folder
        ``model/`` and register a version of it."""
        from mlflow.exceptions import MlflowException

        self.client.log_artifacts(run_id, str(folder), artifact_path="model")
        with self._lock, contextlib.suppress(MlflowException):
            self.client.create_registered_model(name)
        source = f"{self.client.get_run(run_id).info.artifact_uri}/model"
        version = self.client.create_model_version(name, source, run_id=run_id, tags=tags, description=description)
        return str(version.version)

    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def alias(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def versions(self, name: str) -> list[VersionInfo]:
        """Oldest first."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{name}'")
            aliases = dict(self.client.get_registered_model(name).aliases or {})
        except MlflowException:
            return []
        out = [VersionInfo(name=name, version=str(v.version), run_id=v.run_id, tags=dict(v.tags or {}),
                           aliases=sorted(a for a, n in aliases.items() if str(n) == str(v.version)),
                           created_ms=int(v.creation_timestamp or 0))
               for v in found]
        return sorted(out, key=lambda v: int(v.version))

    def version(self, name: str, version: str) -> VersionInfo:
        v = self.client.get_model_version(name, version)
        return VersionInfo(name=name, version=str(v.version), run_id=v.run_id, tags=dict(v.tags or {}),
                           aliases=list(getattr(v, "aliases", []) or []), created_ms=int(v.creation_timestamp or 0))

    def _run_of(self, name: str, version: str) -> str:
        run_id = self.client.get_model_version(name, version).run_id
        if run_id is None:
            raise LookupError(f"{name} version {version} has no training run")
        return str(run_id)

    def download_model(self, name: str, version: str, dest: Path) -> Path:
        """The version's ``model/`` folder, downloaded under ``dest`` (for a flavour to load)."""
        return Path(self.client.download_artifacts(self._run_of(name, version), "model", str(dest)))


class AsyncMetricLogger:
    """A metric sink whose ``log`` only queues: a thread sends the points to MLflow in batches, so logging
    costs the training step a dictionary and a queue put. ``close`` flushes what is left."""

    def __init__(self, registry: ModelRegistry, run_id: str, *, flush_seconds: float = 1.0) -> None:
        self.registry, self.run_id, self.flush_seconds = registry, run_id, flush_seconds
        self._queue: queue.SimpleQueue[tuple[str, float, int, int] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name=f"mlflow-metrics-{run_id[:8]}", daemon=True)
        self.sent = 0
        self.errors = 0
        self._thread.start()

    def log(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        for key, value in metrics.items():
            self._queue.put((key, value, step, now))

    def log_points(self, points: list[tuple[str, float, int, int]]) -> None:
        """Points measured elsewhere (a training worker): (key, value, step, timestamp ms)."""
        for point in points:
            self._queue.put(point)

    def _drain(self) -> None:
        done = False
        while not done:
            points: list[tuple[str, float, int, int]] = []
            deadline = time.monotonic() + self.flush_seconds
            while True:
                try:
                    item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.001))
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                points.append(item)
                if len(points) >= 1000:
                    break
            if points:
                try:
                    self.registry.log_metrics(self.run_id, points)
                    self.sent += len(points)
                except Exception:  # the registry being away must not kill training
                    self.errors += 1
                    log.warning("could not send %d metric points of run %s", len(points), self.run_id,
                                exc_info=True)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
