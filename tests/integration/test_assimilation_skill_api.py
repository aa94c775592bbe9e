"""Forecast skill with and without assimilation through the REST API, on a case whose answer is known: a tank
whose model keeps its level (persistence), observed directly. A forecast from an analysis is then the analysis
mean at every lead, and the open loop is the first guess for ever, so both series of scores can be computed
by hand from the cycle records and the readings. The filter's innovation health says in words when the
innovations run beyond their expected spread (a level that drifts while the model keeps it still)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from helpers import Engine, make_app
from twinengine.client import Client
from twinengine.errors import ValidationFailed
from twinengine.twins.schemas import PropertyWrite

START = datetime(2026, 3, 1, tzinfo=UTC)
HOURS = 12
FIRST_GUESS = 9.0


def _steady(k: int) -> float:
    return 10.0 + 0.3 * math.sin(k)


@pytest.fixture
def uma(engine: Engine, tmp_path: Path) -> Client:
    folder = make_app(tmp_path, name="tank", manifest={
        "state": {"h": {"type": "number", "unit": "m", "uncertainty": ["std"]}},
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"},
                                            "level": {"type": "float", "unit": "m", "nullable": True}}}},
        "assimilation": {"state": ["h"], "spread": 1.0, "step": {"entrypoint": "tank.model:step", "dt": "1h"},
                         "observations": {"level": {"observes": "h", "error": 0.3}}, "members": 20}},
        files={"tank/model.py": """
            def step(state, parameters, forcing, dt):
                return dict(state)
        """})
    engine.as_role("ada", "developer").publish_app(folder)
    client = engine.as_role("uma", "user")
    for name, level in (("steady", _steady), ("drift", lambda k: 10.0 + 3.0 * k)):
        client.create_twin("tank", name, {"station": "T1"})
        client.write_state(name, reported={"h": PropertyWrite(value=FIRST_GUESS, timestamp=START)})
        client.streams.append(name, "readings", [{"time": (START + timedelta(hours=k)).isoformat(), "level": level(k)}
                                                 for k in range(1, HOURS + 1)])
        assert len(client.assimilation.run(name, cycles=50).cycles) == HOURS
    return client


def _nse(f: np.ndarray, o: np.ndarray) -> float:
    return float(1 - np.sum((f - o) ** 2) / np.sum((o - o.mean()) ** 2))


def _rmse(f: np.ndarray, o: np.ndarray) -> float:
    return float(np.sqrt(np.mean((f - o) ** 2)))


def test_both_series_match_scores_computed_by_hand(uma: Client) -> None:
    got = uma.verification.assimilation("steady", "level", leads=["1h", "2h"], starts=200)
    means = {c: uma.assimilation.get("steady", c).analysis["h"]["mean"]  # type: ignore[index]
             for c in range(1, HOURS + 1)}
    assert got.property == "level" and got.unit == "m" and got.observations == HOURS
    assert got.starts == HOURS - 1  # the last analysis has no reading an hour later
    assert got.open_loop_from == START + timedelta(hours=1)
    assert [g.lead_seconds for g in got.assimilated] == [3600, 7200] == [g.lead_seconds for g in got.open_loop]
    for lead, group, alone in zip((1, 2), got.assimilated, got.open_loop, strict=True):
        starts = [k for k in range(1, HOURS) if k + lead <= HOURS]  # readings at hours 1..12
        observed = np.array([_steady(k + lead) for k in starts])
        ours = np.array([means[k] for k in starts])
        assert group.n == alone.n == len(starts)
        assert group.members == 20 and alone.members == 1 and group.crps is not None
        assert alone.crps == pytest.approx(float(np.mean(np.abs(FIRST_GUESS - observed))), abs=1e-9)
        assert group.nse == pytest.approx(_nse(ours, observed), abs=1e-9)
        assert group.rmse == pytest.approx(_rmse(ours, observed), abs=1e-9)
        assert alone.nse == pytest.approx(_nse(np.full(len(starts), FIRST_GUESS), observed), abs=1e-9)
        assert alone.rmse == pytest.approx(_rmse(np.full(len(starts), FIRST_GUESS), observed), abs=1e-9)
        assert group.rmse < alone.rmse
    a, o = got.assimilated[1], got.open_loop[1]  # no 6 h lead: the middle one is spoken of
    assert got.sentence == (f"2-h forecasts of level from the analysis: NSE {a.nse:.2f}; without assimilation: "
                            f"{o.nse:.2f} ({a.n} forecasts checked).")
    later = uma.verification.assimilation("steady", leads=["1h"], starts=200, since=START + timedelta(hours=6))
    assert later.starts == later.assimilated[0].n == HOURS - 6  # analyses at hours 6 to 11 only
    # the filter: consistent, its latest analysis and innovations there to plot
    health = got.filter
    assert health.cycles == HOURS and health.latest_analysis == START + timedelta(hours=HOURS)
    assert not health.diverging and health.ratio is not None and health.ratio < 2
    assert [p.number for p in health.innovations] == list(range(1, HOURS + 1))
    assert all(p.expected > 0 for p in health.innovations)
    assert health.words.startswith("The filter")


def test_a_drifting_level_shows_a_diverging_filter_in_words(uma: Client) -> None:
    got = uma.verification.assimilation("drift")  # the default observation and leads
    assert got.property == "level" and [g.lead_seconds for g in got.assimilated][:2] == [3600, 3 * 3600]
    assert got.filter.diverging and got.filter.ratio is not None and got.filter.ratio > 2
    assert got.filter.words.startswith("Warning:") and "diverging" in got.filter.words


def test_bad_requests_name_their_field(uma: Client) -> None:
    with pytest.raises(ValidationFailed) as bad:
        uma.verification.assimilation("steady", "h")
    assert "property" in str(bad.value)
    with pytest.raises(ValidationFailed) as bad:
        uma.verification.assimilation("steady", leads=["1s"])
    assert "lead" in str(bad.value)
    with pytest.raises(ValidationFailed):
        uma.verification.assimilation("steady", starts=100_000)
    with pytest.raises(ValidationFailed) as bad:
        uma.verification.assimilation("steady", tolerance="3650d")
    assert "tolerance" in str(bad.value)
