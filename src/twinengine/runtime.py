"""The running engine's parts, built once from settings and shared by the API, the CLI and the demo.

The API is built *from* a runtime; tests build one per data dir, and nothing lives in module globals.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pyarrow as pa
from sqlalchemy import event
from sqlalchemy.orm import Session

from twinengine.auth.issuer import BuiltinIssuer, TokenVerifier
from twinengine.auth.oidc import OidcVerifier
from twinengine.auth.principal import Principal
from twinengine.auth.verdicts import VerdictCache
from twinengine.bootstrap import issuer_for, prepare_store
from twinengine.catalog.service import PublishStep
from twinengine.collections import ChainedCollections, CollectionSource, LocalCollections
from twinengine.config import Settings
from twinengine.daemons import workflows_runner
from twinengine.daemons.supervisor import Supervisor
from twinengine.errors import ValidationFailed
from twinengine.lake.collections import LakeCollections
from twinengine.lake.context import Lake, LakeTuning
from twinengine.store import guard
from twinengine.store.blobs import BlobStore
from twinengine.store.engine import Database
from twinengine.store.shared_blobs import SharedBlobStore
from twinengine.streams.compaction import SegmentSink
from twinengine.streams.hub import StreamHub, stream_key
from twinengine.streams.notify import Notifier
from twinengine.twins import service as twins_service
from twinengine.twins.log_writes import REVISIONS_KEY
from twinengine.workers.apps import AppCode
from twinengine.workers.envs import Environments
from twinengine.workers.service import Workers
from twinengine.workflows.apps import AppProcessIndex
from twinengine.workflows.engine import WorkflowEngine
from twinengine.workflows.lake_arrivals import LakeArrivals
from twinengine.workflows.lake_results import LakeResultStore
from twinengine.workflows.triggers import ChainedArrivals, materialize_manifest_triggers

if TYPE_CHECKING:
    from twinengine.access.service import DataAccess
    from twinengine.calibration.runner import CalibrationRunner
    from twinengine.dataspace.connector import Connector
    from twinengine.ml.engine import MLEngine
    from twinengine.ml.usage import TrainingUsage

__all__ = ["Runtime"]


def _forget_revisions(session: Session) -> None:
    """The transaction rolled back: nothing it noted was written (a savepoint's end leaves the notes)."""
    if not session.in_nested_transaction():
        session.info.pop(REVISIONS_KEY, None)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    blobs: BlobStore
    issuer: BuiltinIssuer
    collections: CollectionSource
    workflows: WorkflowEngine
    lake: Lake
    verifiers: list[TokenVerifier] = field(default_factory=list)
    verdicts: VerdictCache = field(default_factory=lambda: VerdictCache(0))  # recently verified tokens
    notifier: Notifier = field(default_factory=Notifier)  # wakes live readers of streams and state
    _streams: StreamHub | None = field(default=None, repr=False)
    _streams_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ml: MLEngine | None = field(default=None, repr=False)
    _calibrations: CalibrationRunner | None = field(default=None, repr=False)
    _dataspace: Connector | None = field(default=None, repr=False)
    _access: DataAccess | None = field(default=None, repr=False)
    # Every background loop of this process: the workflow runner, calibrations, the elected loops (training,
    # streams, lake...) and the election of the process that runs those (daemons/supervisor.py).
    loops: Supervisor = field(default_factory=Supervisor, repr=False)
    workers: Workers = field(default=None, repr=False)  # type: ignore[assignment]  # from the settings if None
    app_code: AppCode = field(init=False, repr=False)  # app versions' warm workers, in their environments
    publish_steps: list[PublishStep] = field(init=False, repr=False)
    long_requests: anyio.CapacityLimiter = field(init=False, repr=False)  # threads of requests that may take long

    def __post_init__(self) -> None:
        self.long_requests = anyio.CapacityLimiter(self.settings.long_request_threads)
        if self.workers is None:
            self.workers = Workers.from_settings(self.settings)
        self.app_code = AppCode(self.workers, self.blobs, self.data_dir / "apps",
                                Environments.from_settings(self.settings))
        self.workflows.apps.code = self.app_code
        # Run by the catalogue before a new version is stored (outside its write transaction): each returns
        # what to record in that transaction. Indexing app processes imports the package in a sandbox.
        self.publish_steps = [AppProcessIndex(self.app_code)]
        self._listen()

    def _listen(self) -> None:
        # State revisions are announced after their commit (twins.state records them in session.info).
        # SQLAlchemy fires both when a SAVEPOINT ends too: only the outermost transaction's end counts (a
        # revision written in a savepoint is not yet committed; a savepoint rolled back keeps the notes before it).
        event.listen(self.db.sessions, "after_commit", self._announce_revisions)
        event.listen(self.db.sessions, "after_rollback", _forget_revisions)
        from twinengine.workflows.ml_processes import register_processes

        register_processes(self.workflows.registry, lambda: self.ml)  # train_model, predict
        from twinengine.calibration.processes import register_processes as calibration_processes
        from twinengine.twin_assimilation.processes import register_processes as assimilation_processes
        from twinengine.twin_assimilation.service import Engines

        assimilation_processes(self.workflows.registry, lambda: Engines(hub=self.streams, code=self.app_code))
        calibration_processes(self.workflows.registry, lambda: self.calibrations)  # calibrate

    def _announce_revisions(self, session: Session) -> None:
        if session.in_nested_transaction():
            return
        for twin_id, _revision in session.info.pop(REVISIONS_KEY, ()):
            self.notifier.notify(f"state:{twin_id}")

    @property
    def streams(self) -> StreamHub:
        """The stream hub on the configured log backend, opened on first use."""
        with self._streams_lock:  # daemons and requests may ask at once on start: open one log only
            if self._streams is None:
                from twinengine.streams.backends import get_backend

                log = get_backend(self.settings.stream_backend).from_settings(self.settings)
                self._streams = StreamHub(log, max_lag=self.settings.stream_max_lag, notifier=self.notifier)
            return self._streams

    @property
    def segment_root(self) -> Path:
        """The folder of compacted stream history (Parquet); segments are recorded relative to it."""
        return (self.settings.streams_dir or self.data_dir / "streams") / "parquet"

    @property
    def segment_sink(self) -> SegmentSink:
        """Where the compactor hands closed stream segments: the lake endpoint when one is configured."""
        if self.settings.lake_endpoint is None:
            return SegmentSink(self.segment_root)
        from twinengine.lake.stream_history import LakeSegmentSink

        return LakeSegmentSink(self.db, self.lake, self.settings.lake_endpoint, self.segment_root)

    def start_stream_workflow(self, session: Session, twin_id: str, workflow: str, parameters: dict[str, Any],
                              event_key: str) -> str | None:
        """A function on arrival asked for a workflow run: fire the twin's stream-window trigger (once per
        event key); returns the run id, or None when the event started a run already or the trigger is off."""
        from twinengine.workflows.triggers import fire_stream_window

        run = fire_stream_window(session, self.workflows, twin_id=twin_id, workflow=workflow,
                                 parameters=parameters, event_key=event_key)
        return run.id if run is not None else None

    def read_stream(self, principal: Principal, ref: str, stream: str, since: datetime | None,
                    until: datetime | None) -> tuple[pa.Table | None, str, str]:
        """A stream's history for ``load_stream``: (records, time field, twin id), read as ``principal``."""
        from twinengine.errors import ProcessParameterInvalid
        from twinengine.streams.compaction import load_stream

        with self.db.session(readonly=True) as session:
            twin = twins_service.get_twin(session, principal=principal, ref=ref)
            declared = twins_service.manifest_for(session, twin).streams.get(stream)
            if declared is None:
                raise ProcessParameterInvalid(f"load_stream: twin {twin.name} has no stream {stream!r}")
            table = load_stream(session, self.streams, twin_id=twin.id, stream=stream,
                                time_field=declared.time_field, since=since, until=until, sink=self.segment_sink)
        return table, declared.time_field, twin.id

    @property
    def access(self) -> DataAccess:
        """EDR's readers and chunk cache (``twinengine.access``), made on first use: xarray and pandas, which
        it imports, are the largest part of an engine's imports, and the first answer of ``twin serve``
        needs neither (the EDR warm-up makes it in the background)."""
        with self._streams_lock:
            if self._access is None:
                from twinengine.access.service import DataAccess

                settings = self.settings
                self._access = DataAccess(self.collections, max_values=settings.edr_max_values,
                                          cache_bytes=settings.edr_chunk_cache_bytes,
                                          workers=settings.edr_read_workers)
            return self._access

    @property
    def calibrations(self) -> CalibrationRunner:
        """The runner of calibrations (``twinengine.calibration``), made on first use; its loop starts with the
        engine."""
        with self._streams_lock:
            if self._calibrations is None:
                from twinengine.calibration.runner import CalibrationRunner

                self._calibrations = CalibrationRunner(db=self.db, code=self.app_code, data_dir=self.data_dir,
                                                       read_stream=self.read_stream,
                                                       sites=self.workflows.services.get("sites"))
            return self._calibrations

    @property
    def dataspace(self) -> Connector:
        """This engine's data space connector (``twinengine.dataspace``), made on first use; its courier is a loop
        of every process (``daemons/dataspace.py``)."""
        with self._streams_lock:
            if self._dataspace is None:
                from twinengine.dataspace.connector import Connector

                issuer = self.issuer
                self._dataspace = Connector(settings=self.settings, db=self.db, lake=self.lake,
                                            keyring=lambda: issuer.keyring,  # type: ignore[arg-type,return-value]
                                            streams=lambda: (self.streams, self.segment_sink),
                                            mac=lambda purpose, value: issuer.mac(purpose, value),
                                            vouching=self._claims_verifier)
            return self._dataspace

    def _claims_verifier(self) -> OidcVerifier | None:
        """The verifier of the data space's shared identity provider (``dataspace_claims_provider``), if any."""
        wanted = self.settings.dataspace_claims_provider
        return next((v for v in self.verifiers if isinstance(v, OidcVerifier) and v.provider_id == wanted), None) \
            if wanted is not None else None

    @property
    def ml(self) -> MLEngine:
        """The AI lifecycle (needs the ``ml`` extra: torch, mlflow), opened on first use: its training loop is
        an elected loop of the supervisor, which runs it here when this process runs those."""
        with self._streams_lock:
            created = self._ml is None
            if self._ml is None:
                from twinengine.ml.engine import MLEngine

                settings = self.settings
                self._ml = MLEngine(data_dir=self.data_dir, db=self.db, blobs=self.blobs,
                                    streams=lambda: self.streams, apps=self.app_code, mlflow_uri=settings.mlflow_uri,
                                    workers=settings.ml_workers, warm_models=settings.ml_warm_models,
                                    training_timeout=settings.training_timeout.total_seconds(),
                                    training_memory=settings.training_memory_bytes, usage=_record_training,
                                    hold=_training_hold, sites=_TrainingSites(self.workflows.services))
            ml = self._ml
        if created:  # a new lifecycle (a test may open another): its loop replaces the last one's
            from twinengine.daemons.training import training_loop

            self.loops.add(training_loop(ml), replace=True)
        return ml

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.store_guard != "off":  # an engine's "off" leaves a guard the process installed as it is
            guard.install(settings.store_guard)
        db = Database(settings.db_url, pool_size=settings.db_pool_size)
        issuer = issuer_for(settings)
        blobs = BlobStore(settings.data_dir / "blobs")
        if settings.engines_share_store:  # engines on other hosts run this one's apps: archives in the store too
            blobs = SharedBlobStore(blobs, db)
        lake = Lake.from_data_dir(settings.data_dir, LakeTuning(
            transfer_attempts=settings.lake_transfer_attempts, transfer_backoff=settings.lake_transfer_backoff,
            tombstone_grace=settings.lake_tombstone_grace, stale_after=settings.lake_stale_after,
            stuck_retry=settings.lake_stuck_retry,
            heartbeat=min(timedelta(seconds=10), settings.lake_stale_after / 4),
            meta_max_depth=settings.lake_meta_max_depth, meta_max_bytes=settings.lake_meta_max_bytes),
            file_roots=settings.lake_file_root_paths, import_hosts=settings.lake_import_hosts)
        # The local folder first, then the lake's gridded datasets (ids scope.name).
        collections = ChainedCollections([
            LocalCollections(settings.collections_dir or settings.data_dir / "collections"),
            LakeCollections(db, lake, cache_dir=settings.data_dir / "cache" / "lake-collections")])
        twins_service.on_twin_created("workflows.manifest_triggers", materialize_manifest_triggers)
        from twinengine.twin_assimilation.auto import materialize as assimilation_schedule

        twins_service.on_twin_created("assimilation.schedules", assimilation_schedule)  # assimilation.run
        workflows = WorkflowEngine.from_settings(settings, db=db, blobs=blobs, collections=collections)
        # Dataset triggers see new lake datasets too; results go to the lake when an endpoint is configured.
        workflows.arrivals = ChainedArrivals([*([workflows.arrivals] if workflows.arrivals else []),
                                              LakeArrivals(db)])
        if settings.lake_endpoint is not None:
            workflows.results = LakeResultStore(workflows.results, db, lake, settings.lake_endpoint)
        runtime = cls(settings=settings, db=db, blobs=blobs, issuer=issuer, collections=collections,
                      workflows=workflows, lake=lake,
                      verifiers=[issuer, *(OidcVerifier(p, db=db) for p in settings.oidc_providers)],
                      verdicts=VerdictCache(settings.token_recheck.total_seconds()),
                      workers=Workers.from_settings(settings))
        workflows.kinds["ensemble"] = _execute_ensemble
        workflows.services["workers"] = runtime.workers  # run_udf and app processes run in its sandboxes
        from twinengine.processes.wiring import install as install_processes

        install_processes(workflows, settings, runtime.workers)  # echo, run_ogc_application_package, CWL runner
        from twinengine.compute.site_executors import SiteExecutors
        from twinengine.workflows.executors import make_executor

        workflows.services["sites"] = SiteExecutors(db, workflows.executor, make_executor,  # runs placed on sites
                                                    keyring=lake.keyring)
        from twinengine.workflows.staging_step import stage_run

        workflows.services["lake"] = lake  # runs stage their inputs near their site (compute.staging)
        workflows.services["staging"] = stage_run
        workflows.services["read_stream"] = runtime.read_stream
        if settings.sync_isolation == "process":  # synchronous graphs are evaluated in child processes
            from twinengine.workflows.sync_processes import SyncProcesses

            workflows.services["sync_processes"] = SyncProcesses(
                settings, read_stream=runtime.read_stream, most=settings.sync_processes,
                memory_bytes=settings.sync_memory_bytes, notify=runtime.notifier.notify)
        workflows.services["stream_end"] = lambda twin_id, stream: runtime.streams.end(stream_key(twin_id, stream))
        return runtime

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def start(self) -> str | None:
        """Migrate the store, then create the first admin if there is none. Returns that admin's token
        (only on the very first start)."""
        token = prepare_store(self.db, self.issuer, self.settings)
        from twinengine.compute.sites import ensure_default_site
        from twinengine.lake.endpoints import record_relative_locations

        with self.db.session() as session:  # the start-up executor is the site `local` (compute.sites)
            ensure_default_site(session, self.workflows.executor)
            record_relative_locations(session, self.lake)  # the data dir's own lake moves with it
        self.workers.sandbox.announce()  # a sandbox that cannot start is said once now, not by every worker
        self.workflows.start()
        from twinengine.daemons.calibrations import calibration_loop
        from twinengine.daemons.dataspace import dataspace_loop

        for loop in [*workflows_runner.loops_of(self.workflows), calibration_loop(self.calibrations),
                     dataspace_loop(lambda: self.dataspace)]:
            self.loops.add(loop)  # calibrations resume those a stopped engine left queued or running
        self.loops.start()  # and the election, when one was chosen (api.app)
        from twinengine.ml.models import pending_work

        with self.db.session(readonly=True) as session:
            if self.loops.elected and pending_work(session) and find_spec("torch") is not None:  # runs to resume,
                _ = self.ml  # policies to watch
        return token

    def close(self) -> None:
        self.loops.stop()  # every loop ends its pass (the election lets go); then their engines are closed
        if self._ml is not None:
            self._ml.stop()
            self._ml = None
        sync_processes = self.workflows.services.get("sync_processes")
        if sync_processes is not None:
            sync_processes.close()
        self.workflows.stop(grace=0.0)  # its runs were cancelled and given their grace as its loops stopped
        if self._calibrations is not None:
            self._calibrations.stop()
        sites = self.workflows.services.get("sites")
        if sites is not None:
            sites.close()
        self.workers.close()
        if self._access is not None:
            self._access.close()
            self._access = None
        with self._streams_lock:
            if self._streams is not None:
                self._streams.close()
                self._streams = None
        if isinstance(self.collections, LocalCollections | ChainedCollections):
            self.collections.close()
        self.db.dispose()


def _execute_ensemble(engine: WorkflowEngine, run_id: str) -> str:
    """An ensemble run's kind, imported when the first one runs: ensembles import the forecast processes and
    with them xarray and pandas, which the engine's first answer does not need."""
    from twinengine.ensembles.run import execute_ensemble

    return execute_ensemble(engine, run_id)


def _training_hold(session: Session, owner: str) -> str | None:
    """Why the runs a twin's retraining policies would start wait: its owner's compute quota on the engine's
    site (where training runs) is used up (``compute.quotas.quota_hold``, as for functions on arrival)."""
    from twinengine.auth.groups import groups_of
    from twinengine.compute.quotas import quota_hold
    from twinengine.compute.sites import DEFAULT_SITE

    return quota_hold(session, identity=owner, groups=groups_of(session, owner), site=DEFAULT_SITE,
                      waits="its retraining policies wait, their triggers kept")


class _TrainingSites:
    """The compute sites as the AI lifecycle sees them (``ml.sites.TrainingSites``): the Dask clients of the
    site executors the workflow engine holds (``services["sites"]``), their watch, and placement."""

    def __init__(self, services: dict[str, Any]) -> None:
        self.services = services

    def _executors(self) -> Any:
        executors = self.services.get("sites")
        if executors is None:
            raise ValidationFailed.one("site", "this engine sends no work to compute sites")
        return executors

    def client(self, site: str) -> Any:
        executor = self._executors().get(site)
        client = getattr(executor, "client", None)
        if client is None:  # placement keeps training off such sites; a site changed since may be one
            raise ValidationFailed.one("site", f"site {site} runs no training workers (its kind has no Dask client)")
        return client

    def check(self, site: str) -> None:
        self._executors().watch.check(site)

    def lost(self, site: str) -> str | None:
        executors = self._executors()
        reason: str | None = executors.watch.lost(site)
        if reason is not None:
            executors.forget(site)  # its client is dropped; a fresh one is made once it answers again
        return reason

    def place_again(self, session: Session, *, owner: str, app: str | None, options: dict[str, Any],
                    lost: set[str]) -> tuple[str | None, list[str]] | None:
        from twinengine.auth.groups import groups_of
        from twinengine.compute.faults import replace
        from twinengine.compute.sites import DEFAULT_SITE
        from twinengine.errors import TwinEngineError

        try:
            placed = replace(session, owner=owner, groups=groups_of(session, owner), options=options, process={},
                             app=app, lost=lost)
        except TwinEngineError:
            return None
        return (None if placed.site == DEFAULT_SITE else placed.site), placed.reasons


def _record_training(session: Session, usage: TrainingUsage) -> None:
    """A training attempt's usage record (``compute.usage``): charged to the run's creator (with the groups it
    is in now), its twin and app, on the site it trained on, with its workers' CPU."""
    from twinengine.auth.groups import groups_of
    from twinengine.compute.metering import WORKER_CPU, WORKER_GPU, Reading
    from twinengine.compute.sites import DEFAULT_SITE
    from twinengine.compute.usage import UsageRun, record_usage
    from twinengine.ml.usage import KIND, POLICY_CREATOR
    from twinengine.twins.models import Twin

    row = usage.run
    twin = session.get(Twin, row.twin_id)
    # a run a retraining policy started (created by the engine) is the twin's: charged to its owner
    owner = twin.owner if row.created_by == POLICY_CREATOR and twin is not None else row.created_by
    run = UsageRun(id=row.id, kind=KIND, owner=owner, twin_id=row.twin_id,
                   twin_name=twin.name if twin is not None else None,
                   app=f"{twin.app_name}@{twin.app_version}" if twin is not None else None,
                   options={"groups": sorted(groups_of(session, owner))}, executor=row.site or DEFAULT_SITE)
    reading = Reading(started_at=usage.started_at, finished_at=usage.finished_at, wall_seconds=usage.wall_seconds,
                      local_cpu_seconds=0.0, remote_core_seconds=usage.cpu_seconds, peak_memory_bytes=0,
                      bytes_read=0, bytes_written=0,
                      sources=(WORKER_CPU, WORKER_GPU) if usage.gpu_seconds else (WORKER_CPU,),
                      gpu_seconds=usage.gpu_seconds)
    record_usage(session, run, reading, status=usage.status, site=row.site or DEFAULT_SITE)
