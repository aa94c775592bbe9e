"""The runtime's AI lifecycle: a loop that claims queued training runs and executes them.

A run: load the app's task from its archive, read its input records, train (one process or N with DDP),
register the version in MLflow with its trail tags, pass it through the gate, move the aliases. Work passes
through ``ml_training_runs`` rows, so a run whose process died is queued again and resumes from its checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from twinengine.catalog.manifest import Manifest
from twinengine.catalog.models import AppVersion
from twinengine.ml import gate as gates
from twinengine.ml.flavours import flavour_named, flavour_of
from twinengine.ml.models import GateDecision, TrainingRun
from twinengine.ml.registry import CHALLENGER, CHAMPION, AsyncMetricLogger, ModelRegistry, registered_name
from twinengine.ml.task import EpochReport, FitResult, TrainingData, TrainingTask
from twinengine.ml.tasks import load_task, unpacked_version
from twinengine.ml.warm import WarmModels
from twinengine.quality.pedigree import flag_counts
from twinengine.quality.plan import QUALITY
from twinengine.store.base import utcnow
from twinengine.store.blobs import BlobStore
from twinengine.store.engine import Database
from twinengine.streams.arrays import to_python
from twinengine.streams.hub import StreamHub, stream_key
from twinengine.twins.models import Twin

__all__ = ["LoadedApp", "MLEngine"]

log = logging.getLogger("twinengine.ml")


@dataclass(frozen=True)
class LoadedApp:
    folder: Path
    package: str
    entrypoint: str
    archive_sha256: str
    app: str  # name@version


class MLEngine:
    """Training runs, the registry and warm models of one runtime."""

    def __init__(self, *, data_dir: Path, db: Database, blobs: BlobStore, streams: Callable[[], StreamHub],
                 mlflow_uri: str | None = None, workers: int = 1, warm_models: int = 8) -> None:
        self.data_dir, self.db, self.blobs, self._streams = data_dir, db, blobs, streams
        self.mlflow_uri = mlflow_uri
        self.root = data_dir / "ml"
        self._registry: ModelRegistry | None = None
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ml-train")
        self._running: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warm: WarmModels[tuple[Any, TrainingTask]] = WarmModels(warm_models)

    @property
    def registry(self) -> ModelRegistry:
        with self._lock:
            if self._registry is None:
                self._registry = ModelRegistry.embedded(self.data_dir, self.mlflow_uri)
            return self._registry

    # -- the loop
    def start(self) -> None:
        """Start the loop; it first queues again the runs a dead process left running (they resume from their
        checkpoints). Nothing is written here: a caller may hold the store's write lock."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ml-runs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        with self.db.session() as session:
            session.execute(update(TrainingRun).where(TrainingRun.status == "running").values(status="queued"))
        while not self._stop.is_set():
            try:
                self.check_policies()
                self.run_once()
            except Exception:
                log.exception("ml loop step failed")
            self._wake.wait(1.0)
            self._wake.clear()

    def run_once(self) -> int:
        """Claim queued runs and hand them to the pool; returns how many were claimed."""
        claimed: list[str] = []
        for run_id in [r for r, f in self._running.items() if f.done()]:
            del self._running[run_id]
        with self.db.session() as session:
            ids = list(session.scalars(select(TrainingRun.id).where(TrainingRun.status == "queued")
                                       .order_by(TrainingRun.created_at)))
            for run_id in ids:
                if run_id in self._running:
                    continue
                done = session.execute(update(TrainingRun).where(TrainingRun.id == run_id,
                                                                 TrainingRun.status == "queued")
                                       .values(status="running", started_at=utcnow()))
                if getattr(done, "rowcount", 0) == 1:
                    claimed.append(run_id)
        for run_id in claimed:  # after the claim's commit
            self._running[run_id] = self._pool.submit(self._execute_safely, run_id)
        return len(claimed)

    def check_policies(self) -> int:
        """One pass of the retraining policies (schedule, buffer fills, drift); returns runs queued."""
        from twinengine.ml import retrain
        from twinengine.ml.models import RetrainPolicy

        with self.db.session(readonly=True) as session:
            if session.scalar(select(RetrainPolicy.model).where(RetrainPolicy.enabled.is_(True)).limit(1)) is None:
                return 0
        with self.db.session() as session:
            return retrain.run_once(self, session)

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        future = self._running.get(run_id)
        if future is not None:
            future.result(timeout=timeout)

    # -- one run
    def app_of(self, twin: Twin, model: str) -> tuple[LoadedApp, Manifest]:
        with self.db.session(readonly=True) as session:
            row = session.get(AppVersion, twin.app_id)
            assert row is not None
            manifest = Manifest.model_validate(row.manifest)
            self.root.mkdir(parents=True, exist_ok=True)
            apps = self.root / "apps"
            apps.mkdir(exist_ok=True)
            folder = unpacked_version(self.blobs, row, apps)
            return LoadedApp(folder=folder, package=manifest.package_name, entrypoint=manifest.models[model].entrypoint,
                             archive_sha256=row.archive_sha256, app=f"{row.name}@{row.version}"), manifest

    def task(self, loaded: LoadedApp) -> TrainingTask:
        return load_task(loaded.folder, loaded.package, loaded.entrypoint)

    def read_records(self, twin: Twin, manifest: Manifest, selection: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                                               dict[str, Any]]:
        """The records a run trains on and their description (stream, offsets) for the trail."""
        stream = selection.get("stream") or next(iter(manifest.streams), None)
        if stream is None:
            return [], {"kind": "none"}
        hub = self._streams()
        key = stream_key(twin.id, stream)
        start = int(selection.get("start") or 0)
        end = selection.get("end")
        end = hub.end(key) if end is None else int(end)
        excluded = set(selection.get("exclude_quality") or ())
        kept = {"good", "suspect", "bad"} - excluded if excluded else None
        table = (hub.read(key, start=start, stop=end, limit=max(end - start, 1), quality=kept) if end > start
                 else None)
        records = to_python(table) if table is not None else []  # array fields as numpy arrays
        inputs = {"kind": "stream", "stream": stream, "start": start, "end": end, "records": len(records)}
        if table is not None and QUALITY in table.column_names:  # the flags of what it trains on (pedigree)
            inputs["quality"] = flag_counts(table.column(QUALITY))
        if excluded:
            inputs["exclude_quality"] = sorted(excluded)
        if selection.get("buffer"):
            inputs |= {"buffer": selection["buffer"], "fill": selection.get("fill")}
        return records, inputs

    def _execute_safely(self, run_id: str) -> None:
        try:
            self.execute(run_id)
        except Exception as exc:
            log.exception("training run %s failed", run_id)
            with self.db.session() as session:
                row = session.get(TrainingRun, run_id)
                if row is not None:
                    row.status, row.error, row.finished_at = "failed", f"{type(exc).__name__}: {exc}", utcnow()
            if (mlrun := self._mlrun_of(run_id)) is not None:
                self.registry.end_run(mlrun, ok=False)

    def _mlrun_of(self, run_id: str) -> str | None:
        with self.db.session(readonly=True) as session:
            row = session.get(TrainingRun, run_id)
            return row.mlflow_run_id if row is not None else None

    def execute(self, run_id: str) -> None:
        with self.db.session(readonly=True) as session:
            row = session.get(TrainingRun, run_id)
            twin = session.get(Twin, row.twin_id) if row is not None else None
            if row is None or twin is None:
                return
            session.expunge(twin)
            model, nproc, overrides, selection = row.model, row.nproc, dict(row.config), dict(row.inputs)
            trigger, mlrun = dict(row.trigger), row.mlflow_run_id
        loaded, manifest = self.app_of(twin, model)
        task = self.task(loaded)
        flavour = flavour_of(task)
        declared = flavour_named(manifest.models[model].framework)
        if declared is not flavour:
            raise ValueError(f"model {model!r}: the manifest declares framework {declared.name!r} but its task is "
                             f"written for {flavour.name!r}")
        if nproc > 1 and flavour.name != "pytorch":
            raise ValueError(f"nproc {nproc}: distributed training is for pytorch models, not {flavour.name}")
        config = task.config.merged(overrides)
        chosen = dict(selection.get("selection", selection))
        if not chosen.get("stream") and manifest.models[model].stream:
            chosen["stream"] = manifest.models[model].stream  # the model's own stream, as declared
        records, inputs = self.read_records(twin, manifest, chosen)
        data = TrainingData(parameters=dict(twin.parameters), records=records, inputs=inputs)
        name = registered_name(twin.name, model)
        tags = {"twin.id": twin.id, "twin.name": twin.name, "model": model, "app": loaded.app,
                "code.sha256": loaded.archive_sha256, "training_run": run_id, "inputs": json.dumps(inputs),
                "trigger": json.dumps(trigger), "nproc": str(nproc),
                "params": json.dumps(config.params, sort_keys=True), "framework": flavour.name}
        if trigger.get("kind") == "tune":
            config = self._tune(run_id, twin, model, task, config, data, trigger)
        if mlrun is None:
            mlrun = self.registry.start_run(name, name=run_id, params=_flat(config.model_dump()), tags=tags)
        self._update(run_id, mlflow_run_id=mlrun, epochs=config.epochs,
                     inputs={"selection": selection.get("selection", selection), **inputs})
        checkpoint = self.root / "checkpoints" / run_id / "last.pt"
        if nproc > 1:
            result = self._fit_distributed(loaded, config, data, checkpoint, nproc, mlrun)
        else:
            sink = AsyncMetricLogger(self.registry, mlrun)
            try:
                result = flavour.fit(task, config, data, checkpoint=checkpoint, sink=sink,
                                     on_epoch=lambda r: self._progress(run_id, r))
            finally:
                sink.close()
        self._finish(run_id, twin, model, task, result, mlrun, name, tags, data, config)

    def optuna_storage(self) -> str:
        """The engine's database when it is PostgreSQL, else an embedded SQLite file in the data dir."""
        url = str(self.db.engine.url.render_as_string(hide_password=False))
        if url.startswith("postgresql"):
            return url
        self.root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.root / 'optuna.db'}"

    def _tune(self, run_id: str, twin: Twin, model: str, task: TrainingTask, config: Any, data: TrainingData,
              trigger: dict[str, Any]) -> Any:
        from twinengine.ml.tune import parse_space, run_study

        space = parse_space(trigger.get("space") or task.search_space or {})
        trials = int(trigger.get("trials", 20))

        def progress(done: int) -> None:
            self._update(run_id, progress=50.0 * done / trials)

        result = run_study(task, config, data, space=space, trials=trials, storage=self.optuna_storage(),
                           study_name=f"{twin.name}.{model}.{run_id}", metric=trigger.get("metric", "val_loss"),
                           direction="maximize" if trigger.get("direction") == "maximize" else "minimize",
                           n_jobs=int(trigger.get("parallel", 1)),
                           on_trial=progress)
        self._update(run_id, trigger=trigger | {"best": result.best_overrides, "best_value": result.best_value,
                                                "complete": result.complete, "pruned": result.pruned,
                                                "failed": result.failed})
        return config.merged(result.best_overrides)

    def _fit_distributed(self, loaded: LoadedApp, config: Any, data: TrainingData, checkpoint: Path, nproc: int,
                         mlrun: str) -> FitResult:
        from twinengine.ml.distributed import DistributedJob, launch

        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        job = DistributedJob(folder=str(loaded.folder), package=loaded.package, entrypoint=loaded.entrypoint,
                             config=config, data=data, out=str(checkpoint.parent / "result.pt"),
                             checkpoint=str(checkpoint), tracking=(self.registry.tracking_uri, mlrun))
        return launch(nproc, job)

    def _progress(self, run_id: str, report: EpochReport) -> None:
        with self.db.session() as session:
            row = session.get(TrainingRun, run_id)
            if row is not None:
                row.epoch, row.epochs = report.epoch, report.epochs
                row.progress = 100.0 * report.epoch / report.epochs
                row.metrics = _finite(report.metrics)
                row.history = [*row.history, {"epoch": float(report.epoch), **_finite(report.metrics)}]

    def _update(self, run_id: str, **values: Any) -> None:
        with self.db.session() as session:
            session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(**values))

    def _champion_on(self, name: str, champion: str, task: TrainingTask, data: TrainingData,
                     config: Any) -> dict[str, float]:
        """The champion's metrics on the candidate's held-out set, so both are judged on the same data; the
        metrics it was registered with when it cannot be rebuilt (other hyper-parameters)."""
        info = self.registry.version(name, champion)
        flavour = flavour_of(task)
        try:
            params = json.loads(info.tags.get("params", "{}")) or dict(config.params)
            net = flavour.load(task, params, self.registry, name, champion)
            return flavour.evaluate(task, net, data, config)
        except Exception as exc:
            log.warning("champion %s v%s could not be re-evaluated (%s); using its registered metrics", name,
                        champion, exc)
            return {k.removeprefix("metric."): float(v) for k, v in info.tags.items() if k.startswith("metric.")}

    def _finish(self, run_id: str, twin: Twin, model: str, task: TrainingTask, result: FitResult, mlrun: str,
                name: str, tags: dict[str, str], data: TrainingData, config: Any) -> None:
        final = _finite({k: v for k, v in result.final.items() if k != "epoch"})
        version = self.registry.register(name, mlrun, result.model, flavour=flavour_of(task),
                                         tags=tags | {f"metric.{k}": f"{v:.9g}" for k, v in final.items()})
        self.registry.set_alias(name, CHALLENGER, version)
        champion = self.registry.alias(name, CHAMPION)
        champion_metrics = self._champion_on(name, champion, task, data, config) if champion is not None else None
        decision = gates.evaluate(gates.GateSpec.model_validate(task.gate), final, champion_metrics)
        self.registry.tag_version(name, version, {"gate.decision": "accepted" if decision.accepted else "rejected",
                                                  "gate.reason": decision.reason})
        if decision.accepted:
            self.registry.set_alias(name, CHAMPION, version)
            self.registry.client.delete_registered_model_alias(name, CHALLENGER)
        self.registry.end_run(mlrun, ok=True)
        with self.db.session() as session:
            row = session.get(TrainingRun, run_id)
            assert row is not None
            row.status, row.model_version, row.finished_at, row.progress = "succeeded", version, utcnow(), 100.0
            row.metrics = final
            row.history = [_finite(h) for h in result.history]
            row.epoch = int(result.history[-1]["epoch"]) if result.history else row.epoch
            session.add(GateDecision(twin_id=twin.id, model=model, version=version, run_id=run_id,
                                     accepted=decision.accepted, reason=decision.reason,
                                     metrics=final | _finite({f"champion.{k}": v
                                                              for k, v in (champion_metrics or {}).items()}),
                                     champion_before=champion))

    # -- serving
    def champion_model(self, twin: Twin, model: str, version: str | None = None) -> tuple[str, Any, TrainingTask]:
        """The champion (or ``version``) loaded once and kept warm; a new champion is picked up on the next
        call, so a caller switches at its own boundary (a batch, a function call)."""
        name = registered_name(twin.name, model)
        chosen = version or self.registry.alias(name, CHAMPION)
        if chosen is None:
            raise LookupError(f"{name} has no champion yet")

        def load() -> tuple[Any, TrainingTask]:
            loaded, _manifest = self.app_of(twin, model)
            task = self.task(loaded)
            tags = self.registry.version(name, chosen).tags
            params = json.loads(tags.get("params", "{}")) if "params" in tags else dict(task.config.params)
            return flavour_of(task).load(task, params, self.registry, name, chosen), task

        net, task = self._warm.get(name, chosen, load)
        return chosen, net, task


def _finite(values: dict[str, float]) -> dict[str, float]:
    """JSON columns (JSONB) take no NaN/inf: an unmeasurable metric is left out."""
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out
