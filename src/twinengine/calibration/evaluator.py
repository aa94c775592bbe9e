"""Model runs of a calibration, batched, counted against a budget, each kept with its score.

Every optimiser and sampler asks the ``Evaluator`` for batches of parameter vectors. It replays runs it already
knows (a calibration resumed after a restart proposes the same vectors again, as its methods are seeded), sends
the others to the simulator in one batch (which runs them in parallel), scores them and stops the method with
``BudgetSpent`` when the runs or the seconds are spent.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from twinengine.calibration.objectives import Objective, log_likelihood, loss, score
from twinengine.calibration.space import Space

__all__ = ["BatchSimulator", "BudgetSpent", "Evaluator", "Run"]

Array = npt.NDArray[np.float64]
# Simulates the observed series for each parameter set of a batch: None (or a raised error) is a failed run.
BatchSimulator = Callable[[list[dict[str, float]]], Sequence[Array | None]]


class BudgetSpent(Exception):
    """Raised inside a method when the calibration's model runs or seconds are spent: it ends the method."""


@dataclass(frozen=True)
class Run:
    """One model run: its parameters (in the space's order), the objective's value and the log-likelihood."""

    index: int
    params: tuple[float, ...]
    score: float
    log_likelihood: float


class Evaluator:
    """Scores batches of parameter vectors through ``simulate`` against ``observed``, within a budget."""

    def __init__(self, space: Space, observed: Array, objective: Objective, simulate: BatchSimulator, *,
                 max_runs: int, max_seconds: float | None = None, known: Iterable[Run] = (),
                 on_runs: Callable[[list[Run]], None] | None = None) -> None:
        self.space, self.objective, self.simulate = space, objective, simulate
        self.observed = np.asarray(observed, dtype="float64")
        self.max_runs, self.max_seconds = max_runs, max_seconds
        self.on_runs = on_runs
        self.runs: list[Run] = []
        self._known = {r.params: r for r in known}
        self._lock = threading.Lock()
        self._reserved = 0
        self._started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    @property
    def count(self) -> int:
        return len(self.runs)

    def best(self) -> Run | None:
        """The run with the smallest loss of the objective (None before any scored run)."""
        scored = [r for r in self.runs if math.isfinite(loss(self.objective, r.score))]
        return min(scored, key=lambda r: loss(self.objective, r.score)) if scored else None

    def losses(self, xs: Sequence[Array]) -> list[float]:
        """What optimisers minimise, one value per vector (see ``objectives.loss``)."""
        return [loss(self.objective, r.score) for r in self.evaluate(xs)]

    def log_posteriors(self, xs: Sequence[Array]) -> list[float]:
        """Log-likelihood plus log prior per vector; a vector outside the bounds is -inf and costs no run."""
        priors = [self.space.log_prior(np.asarray(x, dtype="float64")) for x in xs]
        inside = [x for x, p in zip(xs, priors, strict=True) if math.isfinite(p)]
        found = iter(self.evaluate(inside))
        return [p + next(found).log_likelihood if math.isfinite(p) else -math.inf for p in priors]

    def evaluate(self, xs: Sequence[Array]) -> list[Run]:
        """Runs for the vectors ``xs``, in order. The part beyond the budget is not run: the runs within it are
        kept, then ``BudgetSpent`` is raised."""
        keys = [tuple(float(v) for v in np.asarray(x, dtype="float64")) for x in xs]
        with self._lock:
            if self.max_seconds is not None and time.monotonic() - self._started > self.max_seconds:
                raise BudgetSpent("seconds")
            allowed = max(0, min(len(keys), self.max_runs - self.count - self._reserved))
            self._reserved += allowed
        if allowed == 0 and keys:
            raise BudgetSpent("runs")
        chosen = keys[:allowed]
        fresh = [k for k in dict.fromkeys(chosen) if k not in self._known]
        try:
            simulated = self._simulate(fresh)
        finally:
            with self._lock:
                self._reserved -= allowed
        done: dict[tuple[float, ...], Run] = {}
        new: list[Run] = []
        with self._lock:
            for key in chosen:
                if key in done:
                    run = done[key]
                elif key in self._known:
                    known = self._known[key]
                    run = Run(self.count, key, known.score, known.log_likelihood)
                    done[key] = run
                else:
                    sim = simulated[key]
                    value = score(self.objective, sim, self.observed) if sim is not None else math.nan
                    like = log_likelihood(sim, self.observed) if sim is not None else -math.inf
                    run = Run(self.count, key, value, like)
                    done[key] = run
                    new.append(run)
                self.runs.append(run)
        if self.on_runs is not None and new:
            self.on_runs(new)
        if len(chosen) < len(keys):
            raise BudgetSpent("runs")
        return [done[k] for k in chosen]

    def _simulate(self, keys: list[tuple[float, ...]]) -> dict[tuple[float, ...], Array | None]:
        if not keys:
            return {}
        results = list(self.simulate([self.space.as_dict(np.array(k)) for k in keys]))
        if len(results) != len(keys):
            raise ValueError(f"the simulator answered {len(results)} runs for {len(keys)} parameter sets")
        return {k: (None if r is None else np.asarray(r, dtype="float64")) for k, r in zip(keys, results,
                                                                                              strict=True)}
