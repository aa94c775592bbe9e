"""The app's process for its workflow: showers the champion surrogate drew, scored against the simulator's.

The drawn showers come from the engine's ``predict`` process; this one simulates reference showers at the
same incident energies (its own seed) and compares their high-level features. numpy and scikit-learn only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calo_fastsim.features import features, kernel_features
from calo_fastsim.metrics import kpd, separation_power
from calo_fastsim.simulator import Showers, simulate
from twinengine.app import app_process

_DRAWN = {"schema": {"type": "object"},
          "description": "Drawn showers: {incident_energies: (n, 1), showers: (n, 6480)} in MeV (predict's output)"}


def _showers(drawn: dict[str, Any]) -> Showers:
    return Showers(incident_energies=np.asarray(drawn["incident_energies"], dtype=np.float32).reshape(-1, 1),
                   showers=np.asarray(drawn["showers"], dtype=np.float32))


@app_process(summary="Score drawn showers against simulated ones at the same energies: E_tot/E_inc, KPD",
             parameters={"drawn": _DRAWN},
             returns={"description": "State values: etot_separation, kpd_e3, kpd_e3_err, e_ratio, ref_e_ratio, "
                                     "showers_scored", "schema": {"type": "object"}})
def score_showers(drawn: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Separation power of E_tot/E_inc and KPD (x 10^3) of the high-level features, drawn against simulated."""
    sample = _showers(drawn)
    reference = simulate(len(sample), int(seed), energies_mev=sample.incident_energies[:, 0].astype(float))
    ours, theirs = features(sample), features(reference)
    distance = kpd(kernel_features(theirs), kernel_features(ours), batches=5,
                   batch_size=max(len(sample) // 2, 2))
    return {"etot_separation": separation_power(theirs.e_ratio, ours.e_ratio, bins=20),
            "kpd_e3": 1e3 * distance.value, "kpd_e3_err": 1e3 * distance.error,
            "e_ratio": float(ours.e_ratio.mean()), "ref_e_ratio": float(theirs.e_ratio.mean()),
            "showers_scored": len(sample)}
