"""The engine's calibration runner: claims queued calibrations and runs them in the background.

A calibration's model runs go, batch by batch, to the app version's warm sandboxed workers (``workers`` at
once, each a local process), or, for a calibration placed on a ``dask`` or ``slurm`` site, to that site's Dask
cluster as one task per chunk (``sites.py``, ``remote.py``); every run is kept as it returns. Stopping the
engine puts a calibration in progress back in the queue, and one whose engine died is claimed again once its
heartbeat is stale: either way the next runner replays the kept runs (its method is seeded) and only runs the
rest.

Each attempt writes one usage record and checks its owner's compute quotas after each batch
(``accounting.py``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.calibration.accounting import Attempt, spent_before
from twinengine.calibration.evaluator import Run
from twinengine.calibration.methods import Method, Outcome, calibrate
from twinengine.calibration.models import Calibration, CalibrationRun
from twinengine.calibration.objectives import Objective
from twinengine.calibration.remote import simulate_chunk
from twinengine.calibration.sites import Sites, site_chunks
from twinengine.calibration.space import Parameter, Prior, Space
from twinengine.compute.sites import DEFAULT_SITE
from twinengine.errors import TwinEngineError
from twinengine.store.base import utcnow
from twinengine.store.engine import Database
from twinengine.streams.checksum import RecordsChecksum, records_checksum
from twinengine.twins import standing

if TYPE_CHECKING:
    import pyarrow as pa

    from twinengine.workers.apps import AppCode

__all__ = ["CalibrationRunner", "figure_path"]

log = logging.getLogger("twinengine.calibration")

Array = npt.NDArray[np.float64]
ReadStream = Callable[[Principal, str, str, datetime | None, datetime | None], "tuple[pa.Table | None, str, str]"]
_WAKE_ON_COMMIT = "twinengine.calibration.wake"  # runners a session wakes when it commits


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    for runner in session.info.pop(_WAKE_ON_COMMIT, ()):
        runner.notify()


@event.listens_for(Session, "after_rollback")
def _forget_wake(session: Session) -> None:
    session.info.pop(_WAKE_ON_COMMIT, None)


class _Stopped(Exception):
    """Raised inside a calibration when the engine stops or the calibration was canceled."""


def _revoked(session: Session, row: Calibration) -> bool:
    """Whether the calibration's owner may no longer operate its twin: then it ends as ``error``
    ``GrantRevoked`` (in ``session``) and its runner stops."""
    reason = standing.lost(session, identity=row.owner, twin_id=row.twin_id, role=str(row.settings.get("role", "user")))
    if reason is None:
        return False
    row.status, row.error = "error", standing.lost_error(reason)
    row.finished_at = row.updated_at = utcnow()
    return True


def figure_path(data_dir: Path, calibration_id: str) -> Path:
    return data_dir / "calibrations" / f"{calibration_id}.png"


class CalibrationRunner:
    """Runs up to ``slots`` calibrations at once, each on a thread of its pool, woken by ``notify``. Its loop
    (``run_once``, then ``wait_for_work``) runs on the runtime's supervisor (``daemons.supervisor``)."""

    def __init__(self, *, db: Database, code: AppCode, data_dir: Path, read_stream: ReadStream, slots: int = 2,
                 poll_seconds: float = 5.0, stale_after: float = 120.0, sites: Sites | None = None) -> None:
        self.db, self.code, self.data_dir, self.read_stream = db, code, data_dir, read_stream
        self.sites = sites  # the executors of compute sites, for calibrations placed on one
        self.slots, self.poll_seconds, self.stale_after = slots, poll_seconds, stale_after
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.wake, self.stopping = threading.Event(), threading.Event()
        self.running: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(slots, thread_name_prefix="calibration")

    def notify(self) -> None:
        self.wake.set()

    def notify_after_commit(self, session: Session) -> None:
        """A calibration was queued in ``session``: wake the runner once it commits (before, it would not see
        the row and sleep until its next poll)."""
        session.info.setdefault(_WAKE_ON_COMMIT, set()).add(self)

    def halt(self) -> None:
        """Stop claiming; calibrations in progress stop after their current batch and go back to the queue."""
        self.stopping.set()
        self.wake.set()

    def stop(self) -> None:
        """``halt``, then wait for the calibrations in progress to hand back their rows."""
        self.halt()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def wait_for_work(self) -> None:
        """Between passes: until ``notify`` or ``poll_seconds`` (a calibration queued by another engine)."""
        self.wake.wait(self.poll_seconds)
        self.wake.clear()

    def run_once(self) -> int:
        """Claim what this runner has room for (queued, or left running by a dead engine) and start it."""
        started = 0
        while len(self.running) < self.slots and not self.stopping.is_set():
            claimed = self._claim()
            if claimed is None:
                break
            with self._lock:
                self.running.add(claimed)
            self._pool.submit(self._execute, claimed)
            started += 1
        return started

    def _claim(self) -> str | None:
        stale = utcnow() - timedelta(seconds=self.stale_after)
        with self.db.session() as session:
            ids = list(session.scalars(
                select(Calibration.id).where(or_(Calibration.status == "queued",
                                                 (Calibration.status == "running")
                                                 & (Calibration.heartbeat_at < stale)))
                .order_by(Calibration.created_at).limit(4)))
            for cal_id in ids:
                if cal_id in self.running:
                    continue
                now = utcnow()
                done = session.execute(
                    update(Calibration).where(Calibration.id == cal_id, or_(
                        Calibration.status == "queued",
                        (Calibration.status == "running") & (Calibration.heartbeat_at < stale)))
                    .values(status="running", worker=self.worker_id, heartbeat_at=now, updated_at=now))
                if getattr(done, "rowcount", 0) == 1:
                    return cal_id
        return None

    def _execute(self, cal_id: str) -> None:
        attempt = Attempt(cal_id)  # what this attempt uses, recorded with its end
        try:
            self._calibrate(cal_id, attempt)
        except _Stopped:
            if self.stopping.is_set():
                self._end(cal_id, attempt, status="queued", error=None)  # the next engine resumes it
            else:  # canceled (the service wrote it) or claimed by another engine: the row says so already
                self._end(cal_id, attempt, status=None, error=None)
        except Exception as exc:
            if self.stopping.is_set():  # its workers were stopped with the engine: the next engine resumes it
                self._end(cal_id, attempt, status="queued", error=None)
                return
            if isinstance(exc, TwinEngineError):  # e.g. QuotaExceeded: said as runs say it
                self._end(cal_id, attempt, status="error", error=exc.to_dict())
                return
            log.exception("calibration %s failed", cal_id)
            self._end(cal_id, attempt, status="error",
                      error={"code": type(exc).__name__, "message": str(exc)[:2000]})
        finally:
            attempt.meter.stop()  # ended without a record (the calibration is gone): it takes no more CPU shares
            with self._lock:
                self.running.discard(cal_id)
            self.wake.set()

    def _end(self, cal_id: str, attempt: Attempt, *, status: str | None, error: dict[str, Any] | None) -> None:
        """Write the attempt's end (``status`` None: the row already says it) and its usage record."""
        with self.db.session() as session:
            row = session.get(Calibration, cal_id)
            if row is None:
                return
            if status is not None:
                row.status, row.error, row.updated_at = status, error, utcnow()
                if status != "queued":
                    row.finished_at = utcnow()
            # taken over by another engine: like a calibration put back in the queue, another attempt goes on
            attempt.record(session, row, "queued" if row.status == "running" else row.status)

    def _calibrate(self, cal_id: str, attempt: Attempt) -> None:
        from twinengine.catalog import service as catalog
        from twinengine.catalog.manifest import Manifest
        from twinengine.twins.models import Twin

        with self.db.session() as session:
            row = session.get(Calibration, cal_id)
            revoked = row is not None and _revoked(session, row)
        if revoked:
            raise _Stopped
        with self.db.session(readonly=True) as session:
            row = session.get(Calibration, cal_id)
            twin = session.get(Twin, row.twin_id) if row is not None else None
            if row is None or twin is None:
                return
            attempt.of(row)
            version = catalog.get_app_version(session, principal=SYSTEM, name=twin.app_name,
                                              version=twin.app_version)
            manifest = Manifest.model_validate(version.manifest)
            sha, base = version.archive_sha256, dict(twin.parameters)
            settings, method, objective = dict(row.settings), Method(row.method), Objective(row.objective)
            seed, max_runs, max_seconds, workers = row.seed, row.max_runs, row.max_seconds, row.workers
            known = [Run(r.number, tuple(r.params), math.nan if r.score is None else r.score,
                         -math.inf if r.log_likelihood is None else r.log_likelihood)
                     for r in session.scalars(select(CalibrationRun).where(CalibrationRun.calibration_id == cal_id)
                                              .order_by(CalibrationRun.number))]
            twin_id = twin.id
        spec = manifest.calibration
        if spec is None:
            raise ValueError("the app no longer declares a calibration section")
        space = Space(tuple(Parameter(name, float(v[0]), float(v[1]), Prior(**v[2]))
                            for name, v in settings["space"].items()))
        observed, forcing, checksum = self._observations(twin_id, spec, settings)
        if "read" not in settings:  # the window of observations it read: its rerun reads the same (crates.rerun)
            self._note_read(cal_id, forcing["time"], checksum)
        app = self.code.get(sha, manifest)
        remote = site_chunks(self.sites, settings.get("site"), app, sha, self.stopping)
        pool = ThreadPoolExecutor(workers, thread_name_prefix=f"calibration-{cal_id[-6:]}")
        errors: list[str] = []

        def chunk(sets: list[dict[str, float]]) -> list[Any]:
            payload = {"entrypoint": spec.model.entrypoint, "base": base, "sets": sets, "forcing": forcing}
            answer = remote(payload) if remote is not None else simulate_chunk(app, payload)
            attempt.charge(answer)
            if answer.get("error") and not errors:
                errors.append(str(answer["error"]))
            return list(answer["values"])

        def simulate(sets: list[dict[str, float]]) -> Sequence[Array | None]:
            parts = [sets[i::workers] for i in range(min(workers, len(sets)))]
            answers = list(pool.map(chunk, parts))
            out: list[Any] = [None] * len(sets)
            for i, part in enumerate(answers):
                out[i::len(parts)] = part
            if all(v is None for v in out) and errors and not known_count[0]:
                raise ValueError(f"the model {spec.model.entrypoint} failed: {errors[0]}")
            return [None if v is None else np.asarray(v, dtype="float64") for v in out]

        known_count = [0]

        def keep(new: list[Run]) -> None:
            known_count[0] += len(new)
            self._keep(cal_id, new, max_runs)
            with self.db.session(readonly=True) as session:  # after the batch is kept: its runs stay
                attempt.check_quota(session)

        try:
            outcome = calibrate(space, simulate, observed, objective=objective, method=method, runs=max_runs,
                                seconds=max_seconds, seed=seed, threads=workers,
                                posterior_share=float(settings.get("posterior_share", 0.2)), known=known,
                                on_runs=keep)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        self._finish(cal_id, attempt, space, objective, outcome)

    def _note_read(self, cal_id: str, times: list[Any], checksum: RecordsChecksum) -> None:
        with self.db.session() as session:
            row = session.get(Calibration, cal_id)
            if row is not None and times:
                row.settings = {**row.settings, "read": {"first": str(times[0]), "last": str(times[-1]),
                                                         "records": len(times), "sha256": checksum.sha256,
                                                         "bytes": checksum.bytes}}

    def _observations(self, twin_id: str, spec: Any, settings: dict[str, Any]
                      ) -> tuple[Array, dict[str, list[Any]], RecordsChecksum]:
        since = datetime.fromisoformat(settings["since"]) if settings.get("since") else None
        until = datetime.fromisoformat(settings["until"]) if settings.get("until") else None
        table, time_field, _ = self.read_stream(SYSTEM, twin_id, spec.observed.stream, since, until)
        if table is None or table.num_rows == 0:
            raise ValueError(f"the twin has no records in stream {spec.observed.stream!r} to calibrate on")
        checksum = records_checksum(table)  # the records it read, named by their checksum (the run's crate)
        table = table.sort_by(time_field)
        times = [t.isoformat() if hasattr(t, "isoformat") else str(t) for t in table.column(time_field).to_pylist()]
        observed = np.array([math.nan if v is None else float(v) for v in table.column(spec.observed.field)
                             .to_pylist()], dtype="float64")
        observed[: spec.warmup] = math.nan  # the model spins up: not scored
        if np.isfinite(observed).sum() < 2:
            raise ValueError(f"stream {spec.observed.stream!r} has fewer than 2 values of {spec.observed.field!r}")
        forcing: dict[str, list[Any]] = {"time": times}
        for name, field in spec.model.forcing.items():
            forcing[name] = table.column(field).to_pylist()
        return observed, forcing, checksum

    def _keep(self, cal_id: str, new: list[Run], max_runs: int) -> None:
        """Store a batch's runs and the progress; stop when the engine stops, the calibration was canceled or
        its owner may no longer operate the twin."""
        with self.db.session() as session:
            row = session.get(Calibration, cal_id)
            if row is None or row.status != "running" or row.worker != self.worker_id:
                raise _Stopped
            revoked = _revoked(session, row)
            for run in new:
                session.add(CalibrationRun(calibration_id=cal_id, number=run.index, params=list(run.params),
                                           score=run.score if math.isfinite(run.score) else None,
                                           log_likelihood=run.log_likelihood if math.isfinite(run.log_likelihood)
                                           else None))
            row.runs_done = max(row.runs_done, max(r.index for r in new) + 1)
            row.percent = min(99.0, 100.0 * row.runs_done / max_runs)
            row.heartbeat_at = row.updated_at = utcnow()
        if revoked or self.stopping.is_set():
            raise _Stopped

    def _finish(self, cal_id: str, attempt: Attempt, space: Space, objective: Objective, outcome: Outcome) -> None:
        from twinengine.calibration.plot import plot_calibration
        from twinengine.twins import service as twins
        from twinengine.twins.models import Twin

        with self.db.session() as session:
            row = session.get(Calibration, cal_id)
            twin = session.get(Twin, row.twin_id) if row is not None else None
            if row is None or twin is None:
                return
            path = plot_calibration(figure_path(self.data_dir, cal_id), outcome.runs, objective, outcome.summary,
                                    outcome.samples, title=f"{twin.name}: {row.method} on {objective.value}")
            summary = outcome.summary.to_dict()
            fork_id = None
            if outcome.best is not None:
                owner = Principal(name=row.owner, role=Role(row.settings.get("role", "user")), issuer="internal",
                                  groups=frozenset(row.settings.get("groups", [])))
                try:
                    with session.begin_nested():
                        fork = twins.fork_twin(session, principal=owner, ref=twin.id,
                                               name=twins.free_name(session, f"{twin.name}-calibrated"),
                                               at_revision=None, parameters=dict(outcome.summary.best),
                                               description=f"{twin.name} with the parameters calibration {cal_id} "
                                                           "proposes")
                        fork_id = fork.id
                except Exception as exc:  # the proposal stands without its fork (the owner lost the right)
                    log.warning("calibration %s: no fork proposed: %s", cal_id, exc)
            earlier, earlier_models = spent_before(session, cal_id)
            reading = attempt.record(session, row, "done")
            row.result = {"summary": summary, "stopped": outcome.stopped, "figure": path.name,
                          "runs": len(outcome.runs), "site": row.settings.get("site") or DEFAULT_SITE,
                          "core_seconds": round(earlier + reading.core_seconds, 6),  # every attempt's
                          "model_core_seconds": round(earlier_models + reading.remote_core_seconds, 6)}
            row.best_score = outcome.best.score if outcome.best is not None else None
            row.runs_done, row.percent = len(outcome.runs), 100.0
            row.status, row.decision, row.fork_id = "done", "proposed", fork_id
            row.finished_at = row.updated_at = utcnow()
