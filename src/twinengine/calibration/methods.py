"""Optimisers and samplers of a calibration, each an adapter over a maintained library.

- ``de``: differential evolution (``scipy.optimize.differential_evolution``), a population evaluated per batch.
- ``sceua``: shuffled complex evolution (``spotpy``), Duan et al.'s global optimiser of hydrological models.
- ``dream``: DREAM (``spotpy``), an adaptive multi-chain MCMC sampler of the posterior.
- ``emcee``: the affine-invariant ensemble sampler (``emcee``), walkers evaluated per batch.

The optimisers then spend ``posterior_share`` of the budget sampling around their best with ``emcee``, so every
result carries intervals and correlations. All are seeded: the same seed proposes the same runs.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twinengine.calibration.evaluator import BatchSimulator, BudgetSpent, Evaluator, Run
from twinengine.calibration.objectives import Objective
from twinengine.calibration.space import Space
from twinengine.calibration.summary import Summary, summarise
from twinengine.catalog.calibration_spec import Method

__all__ = ["METHODS", "Method", "Outcome", "calibrate", "gelman_rubin"]

Array = npt.NDArray[np.float64]
Sample = tuple[Array | None, Array | None]  # the posterior sample, and each parameter's R-hat over its chains


SAMPLERS = {Method.DREAM, Method.EMCEE}
R_HAT_LIMIT = 1.05  # DREAM stops sampling this long after every parameter's R-hat is below it (spotpy's: 1.2)
AFTER_CONVERGENCE = 100  # states per chain sampled after convergence, at least (a quarter of the budget if more)


@dataclass(frozen=True)
class Outcome:
    """What a calibration found: every run, the best one, the posterior summary and why it stopped."""

    runs: list[Run]
    best: Run | None
    summary: Summary
    samples: Array | None
    stopped: str  # "converged", "runs" or "seconds"


def _de(ev: Evaluator, space: Space, runs: int, seed: int, threads: int) -> Array | None:
    from scipy.optimize import differential_evolution

    popsize = 15 if runs >= 60 * len(space) else max(2, runs // (4 * len(space)))
    generation = popsize * len(space)
    maxiter = max(1, runs // generation - 1)

    def batch(x: Array) -> Array:  # vectorized: columns are members
        return np.asarray(ev.losses([x[:, j] for j in range(x.shape[1])]), dtype="float64")

    differential_evolution(batch, list(zip(space.lower, space.upper, strict=True)), popsize=popsize,
                           maxiter=maxiter, rng=seed, polish=False, vectorized=True, updating="deferred",
                           init="latinhypercube", tol=1e-8)
    return None


class _Setup:
    """The spotpy setup of a calibration: one 'simulation' is one model run's value (loss or log posterior).
    ``parameters`` is a list of spotpy parameters, made once: spotpy draws a fresh value from each when it asks
    for a random start (a table built once would repeat one draw)."""

    def __init__(self, space: Space, value: Callable[[list[Array]], list[float]]) -> None:
        import spotpy

        self.space, self.value = space, value
        self.parameters = [spotpy.parameter.Uniform(p.name, p.low, p.high) for p in space.parameters]

    def simulation(self, x: Any) -> list[float]:
        return [self.value([np.asarray(list(x), dtype="float64")])[0]]

    def evaluation(self) -> list[float]:
        return [0.0]

    def objectivefunction(self, simulation: list[float], evaluation: list[float], params: Any = None) -> float:
        return simulation[0]


class _Batches:
    """spotpy's repeater (its ``ForEach``) replaced: a burst of proposals goes to the evaluator as one batch;
    SCE-UA's complexes evolve one after the other, each run still going through the evaluator."""

    def __init__(self, sampler: Any, value: Callable[[list[Array]], list[float]], threads: int) -> None:
        self.sampler, self.value, self.threads = sampler, value, threads
        self.phase: str | None = None

    def setphase(self, phase: str) -> None:
        self.phase = phase

    def start(self) -> None:
        pass

    def terminate(self) -> None:
        pass

    def is_idle(self) -> bool:
        return True

    def __call__(self, jobs: Any) -> Iterator[Any]:
        jobs = list(jobs)
        if self.phase == "ComplexEvo":
            # One complex after the other: spotpy draws from numpy's one global generator, so complexes evolving in
            # threads drew in the order the threads ran, and a seeded calibration proposed other runs each time
            # (its rerun and its resume by replay rely on the same ones). Their model runs still go to the workers.
            yield from map(self.sampler.simulate, jobs)
            return
        values = self.value([np.asarray(job[1], dtype="float64") for job in jobs])
        for (rep, params), value in zip(jobs, values, strict=True):
            yield rep, params, [value]


def _spotpy(ev: Evaluator, space: Space, method: Method, runs: int, seed: int, threads: int) -> Sample:
    import spotpy

    value = ev.losses if method is Method.SCEUA else ev.log_posteriors
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), np.errstate(divide="ignore", invalid="ignore"), _seeded(seed):
        setup = _Setup(space, value)
        if method is Method.SCEUA:
            sampler = spotpy.algorithms.sceua(setup, dbformat="ram", save_sim=False, random_state=seed)
            sampler.repeat = _Batches(sampler, value, threads)
            with contextlib.suppress(BudgetSpent):
                sampler.sample(runs, ngs=max(2, 2 * len(space) - 1), kstop=3, peps=0.1, pcento=0.1)
            return None, None
        sampler = spotpy.algorithms.dream(setup, dbformat="ram", save_sim=False, random_state=seed)
        sampler.repeat = _Batches(sampler, value, threads)
        chains = max(7, 2 * len(space) + 1)
        with contextlib.suppress(BudgetSpent):
            # acceptance test 2: exp(log posterior - its current value), the Metropolis ratio of a log density
            # (spotpy's default, 6, halves the difference, as for a -SSR, and samples a posterior twice as wide)
            sampler.sample(runs, nChains=chains, convergence_limit=R_HAT_LIMIT, acceptance_test_option=2,
                           runs_after_convergence=max(AFTER_CONVERGENCE * chains, runs // 4))
    return _chains(sampler, ev, space)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """spotpy draws from numpy's and Python's global generators: seed them for the call, then put them back."""
    import random

    kept, kept_py = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(kept)
        random.setstate(kept_py)


def _chains(sampler: Any, ev: Evaluator, space: Space) -> Sample:
    """DREAM's posterior sample: each chain's states (a rejected proposal repeats the state it stayed in; the
    runs the evaluator kept are the proposals, accepted or not, which spread wider than the posterior) from
    the first iteration at which every parameter's Gelman-Rubin R-hat fell below ``R_HAT_LIMIT``, or, in
    chains that never converged, their second half."""
    positions = [int(n) for n in getattr(sampler, "nChainruns", [])]
    if not positions or min(positions) < 4:
        return None, None
    done = min(positions)  # a budget spent mid-iteration leaves some chains one state longer
    states = np.asarray(sampler.bestpar, dtype="float64")[:, :done, :]  # (chains, states, parameters)
    start = done // 2
    for j, r_hat in enumerate(getattr(sampler, "r_hats", [])):
        if r_hat is not None and np.all(np.asarray(r_hat) < R_HAT_LIMIT) and j + 1 >= 5:
            start = min(j + 1, done - 2)  # state 0 is each chain's start; iteration j ends at state j + 1
            break
    kept = states[:, start:, :]
    sample = kept.reshape(-1, len(space))
    del ev  # the proposals are not the sample (see above)
    if len(sample) < 2 * len(space) or not np.all(np.isfinite(sample)):
        return None, None
    return sample, gelman_rubin(kept)


def gelman_rubin(chains: Array) -> Array | None:
    """R-hat (Gelman & Rubin 1992, as DREAM judges its convergence) of each parameter of ``chains`` (chains,
    states, parameters): the variance between the chains' means against the variance within them; about 1 once
    the chains mix, well above while they still drift apart. None for fewer than 2 chains or 4 states."""
    m, n, _d = chains.shape
    if m < 2 or n < 4:
        return None
    means = chains.mean(axis=1)
    within = chains.var(axis=1, ddof=1).mean(axis=0)
    between = n * means.var(axis=0, ddof=1)
    pooled = (n - 1) / n * within + between / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r_hat = np.sqrt(pooled / within)
    return np.asarray(np.where(within > 0, r_hat, 1.0), dtype="float64")


def _emcee(ev: Evaluator, space: Space, runs: int, seed: int, start: Array | None) -> Sample:
    import emcee

    ndim = len(space)
    walkers = max(8, 2 * ndim + 2)
    walkers += walkers % 2
    rng = np.random.default_rng(seed)
    if start is None:
        p0 = space.lower + rng.random((walkers, ndim)) * (space.upper - space.lower)
    else:  # the optimiser's most likely runs: a last population spread over the posterior's bulk
        p0 = start[:walkers]
        if len(p0) < walkers:
            width = 0.01 * (space.upper - space.lower)
            extra = p0[0] + width * rng.standard_normal((walkers - len(p0), ndim))
            p0 = np.clip(np.vstack([p0, extra]), space.lower, space.upper)
    steps = runs // walkers
    if steps < 4:
        return None, None

    def log_prob(x: Array) -> Array:
        return np.asarray(ev.log_posteriors(list(x)), dtype="float64")

    sampler = emcee.EnsembleSampler(walkers, ndim, log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(seed).get_state()
    with contextlib.suppress(BudgetSpent):
        for _ in sampler.sample(p0, iterations=steps):
            if ev.max_runs - ev.count < walkers:  # a step runs at most one model per walker
                break
    done = sampler.iteration
    if done < 2:
        return None, None
    kept = np.asarray(sampler.get_chain()[:done][done // 2:], dtype="float64")  # (states, walkers, parameters)
    return kept.reshape(-1, ndim), gelman_rubin(np.swapaxes(kept, 0, 1))


def calibrate(space: Space, simulate: BatchSimulator, observed: Array, *, objective: Objective, method: Method,
              runs: int, seconds: float | None = None, seed: int = 0, threads: int = 1,
              posterior_share: float = 0.2, known: list[Run] | None = None,
              on_runs: Callable[[list[Run]], None] | None = None) -> Outcome:
    """Fit ``space`` to ``observed`` with ``method`` in at most ``runs`` model runs (and ``seconds``)."""
    ev = Evaluator(space, observed, objective, simulate, max_runs=runs, max_seconds=seconds, known=known or (),
                   on_runs=on_runs)
    samples: Array | None = None
    r_hat: Array | None = None
    stopped = "converged"
    try:
        if method in SAMPLERS:
            if method is Method.EMCEE:
                samples, r_hat = _emcee(ev, space, runs, seed, None)
            else:
                samples, r_hat = _spotpy(ev, space, method, runs, seed, threads)
        else:
            search = runs - int(runs * posterior_share)
            ev.max_runs = search
            if method is Method.DE:
                with contextlib.suppress(BudgetSpent):
                    _de(ev, space, search, seed, threads)
            else:
                _spotpy(ev, space, method, search, seed, threads)
            ev.max_runs = runs
            likely = sorted({r.params: r for r in ev.runs if math.isfinite(r.log_likelihood)}.values(),
                            key=lambda r: -r.log_likelihood)
            if likely and runs - ev.count >= 2:
                samples, r_hat = _emcee(ev, space, runs - ev.count, seed, np.array([r.params for r in likely]))
    except BudgetSpent as exc:  # pragma: no cover - the methods catch their own
        stopped = str(exc)
    if ev.count >= runs:
        stopped = "runs"
    elif seconds is not None and ev.elapsed > seconds:
        stopped = "seconds"
    best = ev.best()
    return Outcome(runs=ev.runs, best=best, summary=summarise(space, best, samples, r_hat=r_hat), samples=samples,
                   stopped=stopped)


METHODS: dict[str, str] = {
    Method.SCEUA: "shuffled complex evolution (SCE-UA, spotpy): a global optimiser made for hydrological models",
    Method.DE: "differential evolution (scipy): a global optimiser evaluating a whole population at once",
    Method.DREAM: "DREAM (spotpy): adaptive multi-chain MCMC, a posterior of the parameters",
    Method.EMCEE: "affine-invariant ensemble MCMC (emcee): a posterior of the parameters",
}
