"""The workflow's process scores drawn showers against simulated ones at the same energies."""

from __future__ import annotations

import pytest
from calo_fastsim.processes import score_showers
from calo_fastsim.simulator import simulate


def test_score_showers_of_the_simulator_itself() -> None:
    sample = simulate(200, 9)
    drawn = {"incident_energies": sample.incident_energies.tolist(), "showers": sample.showers.tolist()}
    scores = score_showers(drawn, seed=5)
    assert scores["showers_scored"] == 200
    assert scores["e_ratio"] == pytest.approx(scores["ref_e_ratio"], rel=0.02)
    assert 0 <= scores["etot_separation"] < 0.15  # 200 showers: the null's spread, not a verdict
    assert abs(scores["kpd_e3"]) < 5 * scores["kpd_e3_err"] + 5
    with pytest.raises(ValueError, match="6480"):
        score_showers({"incident_energies": [[1000.0]], "showers": [[0.0] * 10]})
