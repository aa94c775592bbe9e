"""What a training run used: one usage record of kind ``training`` per attempt, written with the attempt's
end (succeeded, failed, canceled, or interrupted by the engine stopping, when the next attempt resumes the
run from its checkpoint and writes its own).

A run trains in sandboxed workers started for it (one, and one per parallel trial when it tunes), other
processes than the engine's: their CPU is read from ``/proc`` for each worker's processes, its distributed
ranks included, as the worker is about to stop (``workers/cpu.py``), where the app's code can neither see
nor change it. Training runs on the engine's own site and is not placed. The record itself is written by
whoever the lifecycle is given as its usage sink (the runtime hands it the compute package's records).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from twinengine.ml.models import TrainingRun
from twinengine.ml.remote import TaskWorker
from twinengine.store.base import utcnow

__all__ = ["INTERRUPTED", "KIND", "LOST", "POLICY_CREATOR", "Hold", "TrainingAttempt", "TrainingUsage", "UsageSink"]

KIND = "training"
POLICY_CREATOR = "engine"  # who a run a retraining policy starts is created by (charged to its twin's owner)
INTERRUPTED = "interrupted"  # the engine stopped under the attempt; the run resumes on the next start
LOST = "lost"  # its site was lost under the attempt; the run resumes on another (compute.usage's ``lost``)


@dataclass(frozen=True)
class TrainingUsage:
    """One attempt of a training run, ended."""

    run: TrainingRun  # its row, in the session that writes the attempt's end
    status: str
    started_at: datetime
    finished_at: datetime
    wall_seconds: float
    cpu_seconds: float  # of its sandboxed workers
    gpu_seconds: float = 0.0  # GPUs its workers held x their lifetimes (``TrainingAttempt.add``)


UsageSink = Callable[[Session, TrainingUsage], object]
Hold = Callable[[Session, str], str | None]  # (session, owner) -> why their retraining waits, or None


class TrainingAttempt:
    """One attempt of a training run, from the engine taking it to its end."""

    def __init__(self) -> None:
        self.started_at: datetime = utcnow()
        self.started = time.monotonic()
        self.cpu = 0.0
        self.gpu = 0.0
        self._lock = threading.Lock()  # trial workers stop on the tuner's threads

    def add(self, worker: TaskWorker) -> None:
        """A worker of the run is about to stop: add the CPU its processes used, and the GPUs they hold a
        context on times the worker's lifetime (it was started for the run: the GPUs were the run's from
        its start, as a batch job's allocation is)."""
        spent = worker.cpu_seconds()
        gpus = worker.gpus_held() * (time.monotonic() - worker.started)
        with self._lock:
            self.cpu += spent
            self.gpu += gpus

    def ended(self, row: TrainingRun, status: str) -> TrainingUsage:
        return TrainingUsage(run=row, status=status, started_at=self.started_at, finished_at=utcnow(),
                             wall_seconds=time.monotonic() - self.started, cpu_seconds=self.cpu,
                             gpu_seconds=self.gpu)
