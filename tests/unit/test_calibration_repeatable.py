"""A seeded SCE-UA calibration proposes the same runs again with several workers: what a rerun of a calibration,
and a calibration resumed by replaying its runs, rely on. Its complexes had evolved in threads that each drew
from numpy's one global generator, so they drew in the order the threads happened to run."""

from __future__ import annotations

import os
import time

import numpy as np

from twinengine.calibration.methods import Method, calibrate
from twinengine.calibration.objectives import Objective
from twinengine.calibration.space import Parameter, Space

TIMES = np.linspace(0.0, 6.0, 48)
OBSERVED = 2.0 * np.exp(-0.4 * TIMES) + 0.3


def _simulate(sets: list[dict[str, float]]) -> list[np.ndarray]:
    time.sleep(os.urandom(1)[0] / 255 * 0.002)  # model runs that take their own time, as real ones do
    return [s["a"] * np.exp(-s["k"] * TIMES) + 0.3 for s in sets]


def _runs(seed: int) -> list[tuple[float, ...]]:
    space = Space((Parameter("a", 0.5, 4.0), Parameter("k", 0.05, 1.0)))
    outcome = calibrate(space, _simulate, OBSERVED, objective=Objective.NSE, method=Method.SCEUA, runs=120,
                        seed=seed, threads=3, posterior_share=0.0)
    return [r.params for r in outcome.runs]


def test_a_seeded_sceua_calibration_with_workers_proposes_the_same_runs_again() -> None:
    first = _runs(11)
    assert len(first) > 60
    for _ in range(3):
        assert _runs(11) == first
