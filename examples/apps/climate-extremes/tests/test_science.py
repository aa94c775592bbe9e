"""The science check with xclim, where xclim is installed (the app's environment, or a development one with
``pip install xclim==0.62.0``): for three pathways, five members each, the planted TX90p and Rx1day trends lie
inside the members' 99 % interval, and every index trend grows with the warming. The engine's own suite runs
the same check through the engine (its ``tests/e2e/test_climate_extremes.py``); ``twin app test`` runs this
folder's tests with the engine's Python, which has no xclim, so there it is skipped."""

from __future__ import annotations

import pytest
from climate_extremes.generator import generate
from climate_extremes.trends import confidence_interval, index_trends, planted_trends

PATHWAYS = {"low": 0.15, "medium": 0.35, "high": 0.7}
SIZE = {"grid_cells": 10, "years": 20, "baseline_years": 10, "storms_per_year": 4}
MEMBERS = 5


@pytest.fixture(scope="module")
def trends() -> dict[str, list[dict[str, float]]]:
    xclim = pytest.importorskip("xclim")
    from climate_extremes.indices import annual_indices

    out: dict[str, list[dict[str, float]]] = {}
    with xclim.set_options(run_length_ufunc=True):
        for name, rate in PATHWAYS.items():
            params = {**SIZE, "warming_k_per_decade": rate}
            out[name] = [index_trends(annual_indices(generate(params, m).data, 2021)) for m in range(MEMBERS)]
    return out


@pytest.mark.parametrize("pathway", list(PATHWAYS))
def test_planted_trends_are_inside_the_members_interval(trends: dict[str, list[dict[str, float]]],
                                                        pathway: str) -> None:
    planted = planted_trends({**SIZE, "warming_k_per_decade": PATHWAYS[pathway]})
    for index in ("tx90p_trend", "rx1day_trend"):
        mean, low, high = confidence_interval([t[index] for t in trends[pathway]], level=0.99)
        assert low <= planted[index] <= high, (pathway, index, mean, low, high, planted[index])


def test_every_index_trend_grows_with_the_warming(trends: dict[str, list[dict[str, float]]]) -> None:
    for index in ("tx90p_trend", "rx1day_trend", "heat_wave_frequency_trend", "fwi_trend"):
        means = [confidence_interval([t[index] for t in trends[p]])[0] for p in PATHWAYS]
        assert means == sorted(means), (index, means)
