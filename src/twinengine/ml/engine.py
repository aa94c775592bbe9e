"""The runtime's AI lifecycle: a loop that claims queued training runs and executes them.

A run: read its input records, start a worker of the twin's app (in the app's environment and sandbox) that
loads the task and trains it (one process or N with DDP) while its epochs, metrics and checkpoints come back
here; then register the model folder in MLflow with its trail tags, pass it through the gate, move the
aliases. The engine never imports the app's code nor loads a model. Work passes through
``ml_training_runs`` rows, so a run whose engine died is queued again and resumes from its checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, aliased

from twinengine.app.training import TrainingData
from twinengine.app.training_config import TrainingConfig
from twinengine.catalog.archive import pack, unpack
from twinengine.catalog.manifest import Manifest
from twinengine.catalog.models import AppVersion
from twinengine.errors import DataCorrupted
from twinengine.ml import gate as gates
from twinengine.ml.lifecycle import TwinApp
from twinengine.ml.models import GateDecision, TrainingRun
from twinengine.ml.registry import CHALLENGER, CHAMPION, AsyncMetricLogger, ModelRegistry, registered_name
from twinengine.ml.remote import FitOutcome, RemoteTask, TaskInfo, TaskWorker
from twinengine.ml.sites import TrainingSites, move_lost_run, training_worker
from twinengine.ml.usage import INTERRUPTED, LOST, Hold, TrainingAttempt, UsageSink
from twinengine.ml.warm import WarmModels
from twinengine.quality.pedigree import flag_counts
from twinengine.quality.plan import QUALITY
from twinengine.store.base import utcnow
from twinengine.store.blobs import BlobStore
from twinengine.store.engine import Database
from twinengine.streams.arrays import to_python
from twinengine.streams.checksum import records_checksum
from twinengine.streams.hub import StreamHub, stream_key
from twinengine.twins.models import Twin
from twinengine.workers.process import WorkerError

if TYPE_CHECKING:
    from twinengine.ml.policy_watch import PolicyWatch
    from twinengine.workers.apps import AppCode

__all__ = ["MLEngine", "TwinApp", "model_checksum"]

log = logging.getLogger("twinengine.ml")

CHECKPOINT_FILE = "checkpoint.tar"  # a run's latest checkpoint, as its worker sent it (opaque)
MODEL_BYTES = 1 << 36  # a model folder a worker sends unpacks to no more than 64 GiB


class RunInterrupted(RuntimeError):
    """A run's worker started while the engine was stopping: the run stays ``running`` and resumes on start."""


def model_checksum(folder: Path) -> str:
    """sha256 of a model folder's canonical tar (sorted entries, no times): the same files, the same sum."""
    return hashlib.sha256(pack(folder, compress=False)).hexdigest()


class MLEngine:
    """Training runs, the registry and warm model folders of one runtime."""

    def __init__(self, *, data_dir: Path, db: Database, blobs: BlobStore, streams: Callable[[], StreamHub],
                 apps: AppCode, mlflow_uri: str | None = None, workers: int = 1, warm_models: int = 8,
                 training_timeout: float = 6 * 3600.0, training_memory: int | None = None,
                 usage: UsageSink | None = None, hold: Hold | None = None, sites: TrainingSites | None = None) -> None:
        self.data_dir, self.db, self.blobs, self._streams, self.apps = data_dir, db, blobs, streams, apps
        self.usage = usage  # writes each attempt's usage record (ml/usage.py); None: none is written
        self.hold = hold  # why a retraining policy's runs wait (its twin's owner's quota); None: they never do
        self.sites = sites  # compute sites runs may train on (ml/sites.py); None: the engine's own machine only
        self.mlflow_uri = mlflow_uri
        self.training_timeout, self.training_memory = training_timeout, training_memory
        self.root = data_dir / "ml"
        self._registry: ModelRegistry | None = None
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ml-train")
        self._running: dict[str, Future[None]] = {}
        self._active: dict[str, TaskWorker] = {}  # training workers by run (and trial worker), killed on stop
        self._attempts: dict[str, TrainingAttempt] = {}  # what each run in progress used so far (ml/usage.py)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._policies: PolicyWatch | None = None  # what the retraining loop knows of the policies
        self._warm: WarmModels[dict[str, Any]] = WarmModels(warm_models)

    @property
    def registry(self) -> ModelRegistry:
        with self._lock:
            if self._registry is None:
                self._registry = ModelRegistry.embedded(self.data_dir, self.mlflow_uri)
            return self._registry

    @property
    def warm_models(self) -> int:
        """How many model versions stay warm (``ml_warm_models``): here as files, in a serving worker built."""
        return self._warm.capacity

    # -- the training loop: ``resume`` on start, then ``run_pass`` and ``wait_for_work`` by turns; it runs on
    # the runtime's supervisor (``daemons.training``), in the process that runs the elected loops.
    def resume(self) -> None:
        """Queue again the runs a dead process left running (they resume from their checkpoints), and end those
        left stopping. Runs on the loop's thread: a caller of ``runtime.ml`` may hold the store's write lock."""
        self._stop.clear()
        with self.db.session() as session:
            session.execute(update(TrainingRun).where(TrainingRun.status == "running").values(status="queued"))
            session.execute(update(TrainingRun).where(TrainingRun.status == "stopping").values(
                status="canceled", finished_at=utcnow(), error="stopped on request"))

    def run_pass(self) -> int:
        """One pass: the retraining policies, then the queued runs; returns runs queued plus runs claimed.
        Nothing once ``halt``ed."""
        if self._stop.is_set():
            return 0
        return self.check_policies() + self.run_once()

    def wait_for_work(self) -> None:
        self._wake.wait(1.0)
        self._wake.clear()

    def halt(self) -> None:
        """Claim nothing more and kill the training workers at once: their runs stay ``running`` and are queued
        again when the engine starts, resuming from their last checkpoint."""
        self._stop.set()
        self._wake.set()
        for worker in list(self._active.values()):
            worker.kill()

    def stop(self) -> None:
        """``halt``, then wait for the pool's runs to hand back."""
        self.halt()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def run_once(self) -> int:
        """Claim queued runs and hand them to the pool; returns how many were claimed.

        The runs of one twin's model take turns: a run is claimed only while no other run of that model is
        running. Each candidate is judged against the champion when it finishes, and two at once would both be
        judged against the same one, so the later could replace a better champion that the earlier had just
        made. Runs of different models still train side by side, ``ml_workers`` of them."""
        claimed: list[str] = []
        for run_id in [r for r, f in self._running.items() if f.done()]:
            del self._running[run_id]
        other = aliased(TrainingRun, name="other")
        turn = ~exists().where(other.twin_id == TrainingRun.twin_id, other.model == TrainingRun.model,
                               other.status.in_(("running", "stopping")))
        with self.db.session() as session:
            ids = list(session.scalars(select(TrainingRun.id).where(TrainingRun.status == "queued")
                                       .order_by(TrainingRun.created_at)))
            for run_id in ids:
                if run_id in self._running:
                    continue
                done = session.execute(update(TrainingRun).where(TrainingRun.id == run_id,
                                                                 TrainingRun.status == "queued", turn)
                                       .values(status="running", started_at=utcnow()))
                if getattr(done, "rowcount", 0) == 1:
                    claimed.append(run_id)
        for run_id in claimed:  # after the claim's commit
            self._running[run_id] = self._pool.submit(self._execute_safely, run_id)
        return len(claimed)

    def check_policies(self) -> int:
        """One pass of the retraining policies (schedule, buffer fills, drift, skill); returns runs queued.
        Only policies whose trigger may have fired are visited (``PolicyWatch``): an idle pass is a few small
        reads, and no write transaction."""
        from twinengine.ml import retrain
        from twinengine.ml.policy_watch import PolicyWatch

        if self._policies is None:
            self._policies = PolicyWatch()
        try:
            with self.db.session(readonly=True) as session:
                due = self._policies.due(session, self._streams, utcnow())
        except BaseException:
            self._policies = None  # start afresh next pass: every policy is looked at once
            raise
        if not due:
            return 0
        busy: set[tuple[str, str]] = set()
        try:
            drift = retrain.drift_reports(self, self.db, due)  # the apps' features run before the pass's write
            with self.db.session() as session:
                queued = retrain.run_once(self, session, due, busy, drift)
        except BaseException:
            self._policies.deferred(due)  # looked at again next pass
            raise
        self._policies.deferred(busy)
        return queued

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        future = self._running.get(run_id)
        if future is not None:
            future.result(timeout=timeout)

    def stream_hub(self) -> StreamHub:
        """The runtime's stream hub, reached when needed (it may open after the engine)."""
        return self._streams()

    # -- one run
    def app_of(self, twin: Twin) -> TwinApp:
        """The twin's app version: its manifest and the warm workers of its code (in its environment)."""
        with self.db.session(readonly=True) as session:
            row = session.get(AppVersion, twin.app_id)
            assert row is not None
            manifest = Manifest.model_validate(row.manifest)
            sha, ref = row.archive_sha256, f"{row.name}@{row.version}"
        return TwinApp(workers=self.apps.get(sha, manifest), manifest=manifest, archive_sha256=sha, ref=ref)

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
        read = records_checksum(table)  # the records it trains on, named by their checksum (the run's crate)
        inputs = {"kind": "stream", "stream": stream, "start": start, "end": end, "records": len(records),
                  "sha256": read.sha256, "bytes": read.bytes}
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
            if self._stop.is_set():  # the engine is stopping: the run stays running, is queued again on start
                log.info("training run %s interrupted by the engine stopping; it resumes on restart", run_id)
                with self.db.session() as session:
                    self._record(session, run_id, INTERRUPTED)
                return
            if self._moved(run_id):  # its site was lost under it: placed again, it resumes from its checkpoint
                return
            log.warning("training run %s failed: %s", run_id, exc, exc_info=not isinstance(exc, WorkerError))
            with self.db.session() as session:
                row = session.get(TrainingRun, run_id)
                if row is not None:
                    row.status, row.error, row.finished_at = "failed", _error_text(exc), utcnow()
                self._record(session, run_id, "failed")
            if (mlrun := self._mlrun_of(run_id)) is not None:
                self.registry.end_run(mlrun, ok=False)

    def _moved(self, run_id: str) -> bool:
        """After a run on a site failed: when the site is down (probed now), the run is placed again without it
        and queued again (``ml.sites.move_lost_run``); False when its failure is its own."""
        with self.db.session(readonly=True) as session:
            site = session.scalar(select(TrainingRun.site).where(TrainingRun.id == run_id))
        if not site or self.sites is None:
            return False
        reason = self.sites.lost(site)
        if reason is None:
            return False
        with self.db.session() as session:
            row = session.get(TrainingRun, run_id)
            if row is None:
                return False
            moved = move_lost_run(session, self.sites, row, lost_site=site, reason=reason,
                                  record_lost=lambda: self._record(session, run_id, LOST))
        if moved is None:
            return False
        log.warning("training run %s: site %s was lost under it (%s); it resumes on site %s", run_id, site,
                    reason, moved or "local")
        self._wake.set()
        return True

    def _record(self, session: Session, run_id: str, status: str) -> None:
        """The attempt's usage record, in the session that writes its end (once per attempt)."""
        attempt = self._attempts.pop(run_id, None)
        row = session.get(TrainingRun, run_id) if attempt is not None and self.usage is not None else None
        if attempt is not None and row is not None and self.usage is not None:
            self.usage(session, attempt.ended(row, status))

    def _mlrun_of(self, run_id: str) -> str | None:
        with self.db.session(readonly=True) as session:
            row = session.get(TrainingRun, run_id)
            return row.mlflow_run_id if row is not None else None

    def execute(self, run_id: str) -> None:
        """One run, in a worker of the twin's app started for it: load the task with the run's records, tune
        (if asked), train with progress and checkpoints kept here, judge the champion on the same held-out
        data, then register the model folder and apply the gate (all of it on this side of the pipe)."""
        with self.db.session(readonly=True) as session:
            row = session.get(TrainingRun, run_id)
            twin = session.get(Twin, row.twin_id) if row is not None else None
            if row is None or twin is None:
                return
            session.expunge(twin)
            model, nproc, overrides, selection = row.model, row.nproc, dict(row.config), dict(row.inputs)
            trigger, mlrun, site = dict(row.trigger), row.mlflow_run_id, row.site
        app = self.app_of(twin)
        spec = app.manifest.models[model]
        chosen = dict(selection.get("selection", selection))
        if not chosen.get("stream") and spec.stream:
            chosen["stream"] = spec.stream  # the model's own stream, as declared
        attempt = self._attempts[run_id] = TrainingAttempt()
        records, inputs = self.read_records(twin, app.manifest, chosen)
        data = TrainingData(parameters=dict(twin.parameters), records=records, inputs=inputs)
        with training_worker(app, site, self.sites, label=f"training {run_id} of {app.ref}",
                             memory_bytes=self.training_memory) as worker:
            self._active[run_id] = worker
            try:
                self._unless_stopping(run_id)
                remote = RemoteTask(worker, timeout=self.training_timeout)
                info = remote.load(spec.entrypoint, spec.framework, overrides, data)
                gate = _gate_of(info)  # before training: a malformed gate fails the run now, naming the rule
                if nproc > 1 and info.framework != "pytorch":
                    raise ValueError(f"nproc {nproc}: distributed training is for pytorch models, not "
                                     f"{info.framework}")
                config = info.config
                if trigger.get("kind") == "tune":
                    config = self._tune(run_id, twin, model, app, remote, info, overrides, data, trigger, site)
                name = registered_name(twin.name, model)
                tags = {"twin.id": twin.id, "twin.name": twin.name, "model": model, "app": app.ref,
                        "code.sha256": app.archive_sha256, "training_run": run_id, "inputs": json.dumps(inputs),
                        "trigger": json.dumps(trigger), "nproc": str(nproc),
                        "params": json.dumps(config.params, sort_keys=True), "framework": info.framework}
                if mlrun is None:
                    mlrun = self.registry.start_run(name, name=run_id, params=_flat(config.model_dump()), tags=tags)
                self._update(run_id, mlflow_run_id=mlrun, epochs=config.epochs,
                             inputs={"selection": selection.get("selection", selection), **inputs})
                checkpoint = self.root / "checkpoints" / run_id / CHECKPOINT_FILE
                resume = checkpoint.read_bytes() if checkpoint.is_file() else None
                sink = AsyncMetricLogger(self.registry, mlrun)
                try:
                    outcome = remote.fit(config, nproc=nproc, resume=resume,
                                         progress=_RunProgress(self, run_id, sink, checkpoint))
                finally:
                    sink.close()
                if outcome.stopped:
                    self._canceled(run_id, mlrun)
                    return
                champion = self.own_alias(twin.id, name)
                champion_metrics = (self._champion_on(remote, twin, model, name, champion, config)
                                    if champion is not None else None)
            finally:
                self._active.pop(run_id, None)
                attempt.add(worker)
        self._finish(run_id, twin, model, gate, outcome, mlrun, name, tags, champion, champion_metrics)
        shutil.rmtree(checkpoint.parent, ignore_errors=True)  # the run is over: nothing to resume

    def _unless_stopping(self, run_id: str) -> None:
        """Called once a run's worker is in ``_active``: ``stop`` kills the workers it finds there, so a worker
        that started while the engine was stopping would otherwise train the whole run, and ``stop`` wait for
        it. (``stop`` sets the flag before it looks, and a run registers before it checks: one of them sees the
        other.)"""
        if self._stop.is_set():
            raise RunInterrupted(f"training run {run_id}: the engine is stopping")

    def optuna_storage(self) -> str:
        """The engine's database when it is PostgreSQL, else an embedded SQLite file in the data dir."""
        url = str(self.db.engine.url.render_as_string(hide_password=False))
        if url.startswith("postgresql"):
            return url
        self.root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.root / 'optuna.db'}"

    def _tune(self, run_id: str, twin: Twin, model: str, app: TwinApp, remote: RemoteTask, info: TaskInfo,
              overrides: dict[str, Any], data: TrainingData, trigger: dict[str, Any],
              site: str | None = None) -> TrainingConfig:
        """Optuna's study lives here (its storage is the engine's); each trial trains in a worker of the app,
        ``parallel`` of them at once, and a trial to prune is told to stop at the end of its epoch."""
        from twinengine.ml.tune import parse_space, search

        space = parse_space(trigger.get("space") or info.search_space or {})
        trials = int(trigger.get("trials", 20))
        parallel = max(1, int(trigger.get("parallel", 1)))
        spec = app.manifest.models[model]
        free: queue.SimpleQueue[RemoteTask] = queue.SimpleQueue()
        free.put(remote)
        with contextlib.ExitStack() as extra:
            for index in range(1, parallel):
                worker = extra.enter_context(training_worker(
                    app, site, self.sites, label=f"training {run_id} of {app.ref}, trial worker {index}",
                    memory_bytes=self.training_memory))
                self._active[f"{run_id}#{index}"] = worker
                self._unless_stopping(run_id)
                helper = RemoteTask(worker, timeout=self.training_timeout)
                helper.load(spec.entrypoint, spec.framework, overrides, data)
                free.put(helper)

            def train(config: TrainingConfig, report: Callable[[int, dict[str, float]], bool]
                      ) -> dict[str, float] | None:
                trial_worker = free.get()
                try:
                    outcome = trial_worker.fit(config, progress=_TrialProgress(report), save=False, checkpoint=False)
                finally:
                    free.put(trial_worker)
                return None if outcome.stopped else outcome.final

            def progress(done: int) -> None:
                self._update(run_id, progress=50.0 * done / trials)

            try:
                result = search(train, info.config, space=space, trials=trials, storage=self.optuna_storage(),
                                study_name=f"{twin.name}.{model}.{run_id}", metric=trigger.get("metric", "val_loss"),
                                direction="maximize" if trigger.get("direction") == "maximize" else "minimize",
                                n_jobs=parallel, on_trial=progress)
            finally:
                attempt = self._attempts.get(run_id)
                for index in range(1, parallel):
                    helper_worker = self._active.pop(f"{run_id}#{index}", None)
                    if attempt is not None and helper_worker is not None:
                        attempt.add(helper_worker)
        self._update(run_id, trigger=trigger | {"best": result.best_overrides, "best_value": result.best_value,
                                                "complete": result.complete, "pruned": result.pruned,
                                                "failed": result.failed})
        return info.config.merged(result.best_overrides)

    def _update(self, run_id: str, **values: Any) -> None:
        with self.db.session() as session:
            session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(**values))

    def _canceled(self, run_id: str, mlrun: str) -> None:
        with self.db.session() as session:
            session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(
                status="canceled", finished_at=utcnow(), error="stopped on request"))
            self._record(session, run_id, "canceled")
        self.registry.end_run(mlrun, ok=False, killed=True)

    def _champion_on(self, remote: RemoteTask, twin: Twin, model: str, name: str, champion: str,
                     config: TrainingConfig) -> dict[str, float]:
        """The champion's metrics on the candidate's held-out set, so both are judged on the same data; the
        metrics it was registered with when it cannot be rebuilt (other hyper-parameters)."""
        info = self.registry.version(name, champion)
        try:
            recipe = self.model_recipe(twin, model, champion)
            params = recipe["params"] if recipe["params"] is not None else dict(config.params)
            return remote.evaluate(recipe["folder"], params, config)
        except Exception as exc:
            log.warning("champion %s v%s could not be re-evaluated (%s); using its registered metrics", name,
                        champion, exc)
            return {k.removeprefix("metric."): float(v) for k, v in info.tags.items() if k.startswith("metric.")}

    def _champion_skill(self, gate: gates.GateSpec, twin: Twin, model: str, champion: str | None
                        ) -> dict[str, Any] | None:
        """The gate's verdict on the champion's verified forecasts (None: no rule, no champion)."""
        if gate.champion_skill is None or champion is None:
            return None
        from twinengine.twins.forecasts import check_skill

        with self.db.session(readonly=True) as session:
            return check_skill(session, twin, gate.champion_skill, model=model, model_version=champion)

    def _finish(self, run_id: str, twin: Twin, model: str, gate: gates.GateSpec, outcome: FitOutcome, mlrun: str,
                name: str, tags: dict[str, str], champion: str | None,
                champion_metrics: dict[str, float] | None) -> None:
        assert outcome.model is not None
        final = _finite({k: v for k, v in outcome.final.items() if k != "epoch"})
        with tempfile.TemporaryDirectory(prefix="twin-model-") as tmp:
            folder = Path(tmp) / "model"
            unpack(outcome.model, folder, max_unpacked_bytes=MODEL_BYTES, compressed=False)
            version = self.registry.register(name, mlrun, folder, tags=tags | {
                "model.sha256": model_checksum(folder), **{f"metric.{k}": f"{v:.9g}" for k, v in final.items()}})
        self.registry.set_alias(name, CHALLENGER, version)
        decision = gates.evaluate(gate, final, champion_metrics, self._champion_skill(gate, twin, model, champion))
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
            row.history = [_finite(h) for h in outcome.history]
            row.epoch = int(outcome.history[-1]["epoch"]) if outcome.history else row.epoch
            session.add(GateDecision(twin_id=twin.id, model=model, version=version, run_id=run_id,
                                     accepted=decision.accepted, reason=decision.reason,
                                     metrics=final | _finite({f"champion.{k}": v
                                                              for k, v in (champion_metrics or {}).items()}),
                                     champion_before=champion))
            self._record(session, run_id, "succeeded")

    # -- serving
    def own_alias(self, twin_id: str, name: str, alias: str = CHAMPION) -> str | None:
        """The version ``alias`` names in ``name``, when the twin ``twin_id`` trained it, else None. A registered
        model is named after its twin, and a deleted twin's name can be taken again: the alias alone would hand
        the new twin (maybe another user's) the old twin's model."""
        version = self.registry.alias(name, alias)
        if version is None:
            return None
        return version if self.registry.version(name, version).tags.get("twin.id") == twin_id else None

    def champion_of(self, twin: Twin, model: str, version: str | None = None) -> str:
        """``version`` when the registry has it, else the champion's; LookupError when there is none. Only
        versions this twin trained count (``own_alias``)."""
        name = registered_name(twin.name, model)
        if version is None:
            chosen = self.own_alias(twin.id, name)
            if chosen is None:
                raise LookupError(f"{name} has no champion yet")
            return chosen
        try:
            found = self.registry.version(name, version)
        except Exception:
            raise LookupError(f"{name} has no version {version!r}") from None
        if found.tags.get("twin.id") != twin.id:
            raise LookupError(f"{name} has no version {version!r}")
        return version

    def model_recipe(self, twin: Twin, model: str, version: str) -> dict[str, Any]:
        """What an app worker builds ``version`` from: its registry version, hyper-parameters and model folder
        (a plain tar, checked against the checksum it was registered with), kept warm here as bytes."""
        name = registered_name(twin.name, model)

        def load() -> dict[str, Any]:
            tags = self.registry.version(name, version).tags
            if tags.get("twin.id") != twin.id:  # a version another twin of that name trained (see own_alias)
                raise LookupError(f"{name} has no version {version!r}")
            with tempfile.TemporaryDirectory(prefix="twin-model-") as tmp:
                folder = self.registry.download_model(name, version, Path(tmp))
                registered = tags.get("model.sha256")
                if registered is not None and model_checksum(folder) != registered:
                    raise DataCorrupted(f"{name} version {version}: its model files do not match the checksum "
                                        "they were registered with")
                blob = pack(folder, compress=False)
            params = json.loads(tags["params"]) if "params" in tags else None
            interval = {k.removeprefix("metric."): float(v) for k, v in tags.items()
                        if k.startswith("metric.interval_")}
            return {"version": version, "params": params, "folder": blob, "interval": interval or None}

        return self._warm.get(f"{twin.id}/{name}", version, load)  # by twin id too: names are reused

class _RunProgress:
    """A run's fit as the engine records it: each epoch in its row (and whether a stop was asked), step
    metrics to MLflow, each checkpoint written whole beside the previous one, then renamed over it."""

    def __init__(self, engine: MLEngine, run_id: str, sink: AsyncMetricLogger, checkpoint: Path) -> None:
        self.engine, self.run_id, self.sink, self.path = engine, run_id, sink, checkpoint

    def epoch(self, epoch: int, epochs: int, metrics: dict[str, float]) -> bool:
        kept = _finite(metrics)  # (MLflow has them already: the fit logs an epoch's metrics as points too)
        with self.engine.db.session() as session:
            row = session.get(TrainingRun, self.run_id)
            if row is None:
                return True
            row.epoch, row.epochs = epoch, epochs
            row.progress = 100.0 * epoch / epochs if epochs else 0.0
            row.metrics = kept
            row.history = [*row.history, {"epoch": float(epoch), **kept}]
            return row.status == "stopping" or self.engine._stop.is_set()

    def metrics(self, points: list[tuple[str, float, int, int]]) -> None:
        self.sink.log_points(points)

    def checkpoint(self, blob: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_bytes(blob)
        partial.replace(self.path)


class _TrialProgress:
    """A tuning trial's fit: each epoch goes to Optuna (which may prune it); nothing is kept."""

    def __init__(self, report: Callable[[int, dict[str, float]], bool]) -> None:
        self.report = report

    def epoch(self, epoch: int, epochs: int, metrics: dict[str, float]) -> bool:
        return self.report(epoch, metrics)

    def metrics(self, points: list[tuple[str, float, int, int]]) -> None:
        pass

    def checkpoint(self, blob: bytes) -> None:
        pass


def _gate_of(info: TaskInfo) -> gates.GateSpec:
    """The task's gate, validated; a rule that does not parse is an error naming it (``gate.<path>``)."""
    from pydantic import ValidationError

    try:
        return gates.GateSpec.model_validate(info.gate)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in ("gate", *first["loc"]))
        raise ValueError(f"{where}: {first['msg']}") from None


def _error_text(exc: Exception) -> str:
    """A failed run's error: the app's own ``Type: message`` and where in its code, when it raised there."""
    if isinstance(exc, WorkerError):
        return exc.remote + (f" (at {exc.place})" if exc.place else "")
    return f"{type(exc).__name__}: {exc}"


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
