"""Numerics of data assimilation: how a twin corrects its state from observations.

Analysis steps of ensemble filters (``ensemble``: stochastic EnKF, ETKF, LETKF), a bootstrap particle filter
(``particle``), 3D-Var / optimal interpolation (``variational``), reference models with known answers
(``reference_models``) and a driver of forecast/analysis cycles over a synthetic truth (``cycle``).

Plain numpy on arrays: an ensemble is ``E`` with shape ``(N, n)`` (members x state variables), observations
``y`` have shape ``(p,)``. Nothing here knows twins, runs or the web layer; the service that will call it
sits above.
"""

from twinengine.assimilation.cycle import CycleResult, run_cycles
from twinengine.assimilation.ensemble import enkf, etkf, gaspari_cohn, letkf
from twinengine.assimilation.particle import (
    ParticleUpdate,
    bootstrap_update,
    effective_sample_size,
    systematic_resample,
)
from twinengine.assimilation.variational import three_dvar

__all__ = [
    "CycleResult",
    "ParticleUpdate",
    "bootstrap_update",
    "effective_sample_size",
    "enkf",
    "etkf",
    "gaspari_cohn",
    "letkf",
    "run_cycles",
    "systematic_resample",
    "three_dvar",
]
