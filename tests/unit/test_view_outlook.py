"""The flood view's outlook per lead time, computed from a forecast's members (``ui.outlook``): the chance of
crossing the threshold within and at each lead, the ensemble's band there, past skill chosen per lead, the words
and the names the summary template reads; and the manifest's declarations it rests on."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import RIVER_REACH
from twinengine.catalog.validate import check_app_dir
from twinengine.catalog.view_text import Scalar, render
from twinengine.catalog.views import Outlook
from twinengine.twins.forecast_schemas import ForecastRead, ForecastValueRead, LeadScores
from twinengine.ui.outlook import lead_key, lead_label, outlook
from twinengine.workflows.initial_state import start_words

ISSUED = datetime(2026, 3, 2, tzinfo=UTC)
LEADS = [timedelta(hours=h) for h in (6, 12, 24, 48)]


def forecast(rows: list[list[float]], *, members: bool = True) -> ForecastRead:
    values = [ForecastValueRead(valid_time=ISSUED + timedelta(hours=k + 1), lead_seconds=(k + 1) * 3600,
                                value=float(np.mean(row)), members=row if members else None)
              for k, row in enumerate(rows)]
    return ForecastRead(id="fc-1", twin_id="tw-1", property="level", issued_at=ISSUED, recorded_at=ISSUED,
                        workflow="forecast", run_id="ens-1", model=None, model_version=None, unit="m",
                        interval_level=None, steps=len(values), values=values)


def group(lead_hours: int, n: int, *, members: int | None = None, coverage: float | None = None) -> LeadScores:
    return LeadScores(workflow="forecast", model_version=None, lead_seconds=lead_hours * 3600, members=members, n=n,
                      nse=0.9, rmse=0.05, coverage=coverage, interval_level=0.9 if coverage is not None else None)


def test_the_chance_within_a_lead_counts_members_above_the_threshold_at_any_time_up_to_it() -> None:
    # member 0 crosses at 3 h and falls back, member 1 crosses at 20 h, member 2 never: 48 hourly steps
    rows = [[2.0 if k == 2 else 1.0, 2.0 if 19 <= k <= 30 else 1.0, 1.0] for k in range(48)]
    names: dict[str, Scalar] = {}
    got = outlook(forecast(rows), 1.8, LEADS, [], "m", names)
    assert got is not None and got.members == 3
    assert [r.probability for r in got.leads] == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert [r.probability_at for r in got.leads] == pytest.approx([0, 0, 1 / 3, 0])
    assert [r.exceeding for r in got.leads] == [1, 1, 2, 2]
    assert got.leads[2].spread == pytest.approx(np.std([1.0, 2.0, 1.0], ddof=1))
    assert (got.leads[2].low, got.leads[2].high, got.band) == (1.0, 2.0, "members' range")
    assert got.text == ("Chance the level exceeds 1.8 m within 6 h: 33 %, 12 h: 33 %, 24 h: 67 %, 48 h: 67 %; 3 "
                        "ensemble members, spread widest at 24 h: 1 to 2 m (members' range).")
    assert got.skill_text == "Past forecasts: none checked against observations yet."
    assert names["outlook.24h"] == pytest.approx(2 / 3) and names["outlook.24h.exceeding"] == 2
    assert names["outlook.48h.skill"] == "not checked yet" and names["outlook.members"] == 3
    said = render("chance within 24 h: {outlook.24h:.0%} ({outlook.24h.exceeding} of {outlook.members}); past "
                  "24-h forecasts: {outlook.24h.skill}", names)
    assert said == "chance within 24 h: 67% (2 of 3); past 24-h forecasts: not checked yet"


def test_a_forecast_without_members_is_certain_and_one_that_ends_early_says_so() -> None:
    got = outlook(forecast([[1.0], [2.0]] + [[1.0]] * 10, members=False), 1.8, LEADS, [], "m", {})
    assert got is not None and got.members is None
    assert [r.reached for r in got.leads] == [True, True, False, False]
    assert [r.probability for r in got.leads] == [1.0, 1.0, None, None]
    assert got.text.endswith("(the forecast ends before 24 and 48 h).")


def test_past_skill_per_lead_prefers_a_banded_group_then_the_most_pairs() -> None:
    rows = [[1.0, 1.1] for _ in range(48)]
    groups = [group(6, 12), group(6, 4, members=8, coverage=0.75), group(12, 9), group(12, 3, members=8)]
    names: dict[str, Scalar] = {}
    got = outlook(forecast(rows), 1.8, LEADS, groups, "m", names)
    assert got is not None
    six, twelve, day, two_days = (r.skill for r in got.leads)
    assert six is not None and (six.n, six.members, six.coverage) == (4, 8, 0.75)
    assert six.text == ("NSE 0.90, within their 90 % band 75 % of the time, RMSE 0.05 m (4 forecasts of 8 members "
                        "checked)")
    assert twelve is not None and (twelve.n, twelve.members) == (9, None)
    assert day is None and two_days is None
    assert got.skill_text.endswith("; 24 and 48 h ahead not checked yet.")
    assert names["outlook.6h.n"] == 4 and names["outlook.12h.nse"] == 0.9


def test_leads_are_named_for_the_summary() -> None:
    assert [lead_key(d) for d in (timedelta(hours=6), timedelta(minutes=90), timedelta(seconds=45))] == [
        "6h", "90min", "45s"]
    assert [lead_label(d) for d in (timedelta(hours=24), timedelta(minutes=90))] == ["24 h", "90 min"]
    assert Outlook().leads == LEADS
    with pytest.raises(ValueError, match="leads must increase"):
        Outlook(leads=[timedelta(hours=12), timedelta(hours=6)])


def test_an_initial_state_names_a_state_property_and_a_graph_parameter(tmp_path: Path) -> None:
    app = tmp_path / "river-reach"
    shutil.copytree(RIVER_REACH, app)
    manifest = yaml.safe_load((app / "twinapp.yaml").read_text())
    assert manifest["workflows"]["forecast"]["initial_state"] == {"storage_mm": ["storage", "storage_from_level"]}
    manifest["workflows"]["forecast"]["initial_state"] = {"storage_mm": "storag", "storage": "storage",
                                                          "rain_factor": ["level", "alert_threshold"],
                                                          "alert_level": ["level", "level"]}
    (app / "twinapp.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    _, problems = check_app_dir(app)
    said = {p.loc: p.msg for p in problems}
    assert said["workflows.forecast.initial_state.storage_mm"] == "state property 'storag' is not declared under state"
    assert said["workflows.forecast.initial_state.rain_factor"] == (
        "state property 'alert_threshold' is desired only: the twin never reports it, so no run could start from it")
    assert said["workflows.forecast.initial_state.alert_level"] == "a state property is listed twice"
    assert said["workflows.forecast.initial_state.storage"].startswith(
        "'storage' is not a parameter of workflow 'forecast' (it declares ")


def test_where_a_run_started_is_said_in_one_sentence() -> None:
    state = {"revision": 99, "time": "2026-03-04T00:00:00+00:00", "asked": "now", "parameters": {
        "storage_mm": {"property": "storage", "source": "state", "value": 13.8333, "unit": "mm",
                       "uncertainty": {"std": 0.11, "members": [13.7, 13.9]}}}}
    assert start_words(state) == "started from revision 99 (storage 13.83 mm ± 0.11 mm at 2026-03-04 00:00 UTC)"
    given = {**state, "parameters": {"storage_mm": {"property": "storage", "source": "request", "value": 25}}}
    assert start_words(given) == "started from revision 99 (storage 25 (given) at 2026-03-04 00:00 UTC)"
    titled = {**state, "parameters": {"storage_mm": {"property": "storage_from_level", "source": "state",
                                                     "title": "storage from the gauge's level", "value": 3.02,
                                                     "unit": "mm"}}}
    assert start_words(titled) == ("started from revision 99 (storage from the gauge's level 3.02 mm at "
                                   "2026-03-04 00:00 UTC)")
    nothing = {"revision": None, "time": None, "asked": "now",
               "parameters": {"storage_mm": {"property": "storage", "source": "default"}}}
    assert start_words(nothing) == "started from the workflow's defaults"
    assert start_words({**nothing, "asked": "defaults", "parameters": {
        "storage_mm": {"property": "storage", "source": "request", "value": 5}}}) == (
        "started from the workflow's defaults (storage 5 (given))")
