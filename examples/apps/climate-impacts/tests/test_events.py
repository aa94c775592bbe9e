"""Drought events: a block on a noisy field is found with its duration, extent and intensity, and one crowded
month does not change them; the generator's
planted droughts are found within the tolerances (one month, 0.05 of the grid, 0.2 of SPI) in the reference
scenario; the members' checks put the closed form inside their 99 % interval."""

from __future__ import annotations

import numpy as np
import pytest
from climate_impacts.ensemble import BOUNDS, confidence_interval, scenario_checks
from climate_impacts.events import find_events


def test_a_block_is_found_with_its_characteristics() -> None:
    rng = np.random.default_rng(4)
    field = rng.standard_normal((40, 12, 12))
    field[10:15, 2:8, 3:9] = -1.6
    events, number = find_events(field)
    block = events[int(np.bincount(number[10:15, 2:8, 3:9].ravel()).argmax())]
    assert block.duration == 5 and block.start == 10
    assert abs(block.extent - 36 / 144) <= 0.03 and abs(block.intensity + 1.6) < 0.1


def test_one_crowded_month_does_not_set_a_drought_s_scale() -> None:
    """A month in which chance dry cells join a drought in a crowd (twice its area, once) leaves its duration
    and extent those of the months it holds: its scale is the area it keeps for two months running."""
    rng = np.random.default_rng(5)
    field = np.abs(rng.standard_normal((40, 12, 12)))  # nothing dry but what is put there
    field[10:16, 2:7, 3:9] = -1.6  # six months over 30 cells
    field[10, 6:12, :] = -1.3  # in its first month, 72 more cells beside it
    events, number = find_events(field)
    block = events[int(np.bincount(number[10:16, 2:7, 3:9].ravel()).argmax())]
    assert block.start == 10 and block.duration == 6, block
    assert abs(block.extent - 30 / 144) <= 0.01 and block.peak_extent > 0.6, block
    one_month = np.abs(rng.standard_normal((12, 12, 12)))
    one_month[5, 2:7, 3:9] = -1.6  # a drought of one month is one month long
    (event,), _ = find_events(one_month)
    assert event.start == 5 and event.duration == 1, event


def test_scattered_dry_cells_make_no_event() -> None:
    field = np.zeros((6, 12, 12))
    field[:, ::3, ::3] = -2.0  # 16 single cells a month, none touching
    assert find_events(field)[0] == []


def test_confidence_interval() -> None:
    mean, low, high = confidence_interval([1.0, 2.0, 3.0], level=0.95)
    assert mean - low == high - mean and mean == 2.0 and abs((high - mean) - 4.302653 / np.sqrt(3)) < 1e-5


@pytest.mark.parametrize("members", [3])
def test_planted_droughts_and_the_closed_form_in_the_reference_scenario(members: int) -> None:
    pytest.importorskip("climate_indices")  # the Fire Weather Index of every member
    from climate_impacts.generator import Config, generate
    from climate_impacts.impacts import analyse

    params = {"years": 20, "baseline_years": 30, "grid_cells": 10, "droughts": 2}
    states = []
    for m in range(members):
        w = generate(params, m)
        states.append(analyse(w.data, 2031, planted=w.droughts, config=Config.from_parameters(params)).state)
    checks = scenario_checks(states)
    assert checks["planted_found"] == checks["planted"] == 2 * members
    for key, bound in BOUNDS.items():
        assert checks[f"planted_{key}_error"] <= bound, (key, checks)
    assert checks["inside"], checks
    assert abs(checks["closed_form"] - 0.159) < 0.01  # before the planted blocks' share
