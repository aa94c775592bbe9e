"""Forecasts recorded, observations reported later, and the skill scores per lead over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from helpers import RIVER_REACH, Engine
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import ValidationFailed
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOURS = 48


def truth(hours: float) -> float:
    return 1.0 + 0.5 * np.sin(hours / 6.0)


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def issue(uma: Client, *, every: int = 6, steps: int = 6, error: float = 0.05, seed: int = 1,
          version: str = "1") -> None:
    """Forecasts issued every ``every`` hours for ``steps`` hours ahead; the error grows with the lead."""
    rng = np.random.default_rng(seed)
    for start in range(0, HOURS - steps, every):
        values = [truth(start + k) + error * k * rng.standard_normal() for k in range(1, steps + 1)]
        members = [[v + 0.1 * rng.standard_normal() for _ in range(8)] for v in values]
        uma.verification.add_forecast("reach", "level", values, issued_at=T0 + timedelta(hours=start), step="1h",
                                      members=members, lower=[v - 0.2 for v in values],
                                      upper=[v + 0.2 for v in values], interval_level=0.9,
                                      workflow="forecast", model_version=version)


def observe(uma: Client, hours: int = HOURS, minutes: int = 2) -> None:
    for h in range(hours):  # a few minutes off the hour: matched within the tolerance
        uma.write_state("reach", reported={"level": PropertyWrite(
            value=truth(h), timestamp=T0 + timedelta(hours=h, minutes=minutes))})


def test_scores_appear_per_lead_once_observations_arrive(uma: Client) -> None:
    issue(uma)
    before = uma.verification.scores("reach", "level")
    assert before.forecast_values == 42 and before.leads == []  # nothing observed yet
    observe(uma)
    report = uma.verification.scores("reach", "level", pairs=True)
    assert [g.lead_seconds for g in report.leads] == [3600 * k for k in range(1, 7)]
    first, last = report.leads[0], report.leads[-1]
    assert first.n == 7 and first.workflow == "forecast" and first.model_version == "1"
    assert first.rmse is not None and last.rmse is not None and first.rmse < last.rmse  # skill falls with lead
    assert first.nse is not None and first.nse > 0.9
    assert first.crps is not None and first.spread_skill is not None and first.coverage is not None
    forecast = np.array([p.forecast for p in first.pairs or []])
    observed = np.array([p.observed for p in first.pairs or []])
    assert first.rmse == pytest.approx(np.sqrt(np.mean((forecast - observed) ** 2)))
    one = uma.verification.scores("reach", "level", lead="PT3H", threshold=1.2)
    assert [g.lead_seconds for g in one.leads] == [3 * 3600] and one.leads[0].brier is not None
    bins = one.leads[0].reliability or []  # from the members' share above the threshold
    assert bins and sum(b.count for b in bins) == one.leads[0].n and all(0 <= b.observed <= 1 for b in bins)
    assert uma.verification.scores("reach", "level", lead="PT3H").leads[0].reliability is None  # no threshold


def test_observations_outside_the_tolerance_are_not_pairs(uma: Client) -> None:
    issue(uma)
    observe(uma, minutes=20)  # 20 min after one forecast hour, 40 min before the next
    assert uma.verification.scores("reach", "level", tolerance="10min").leads == []
    assert uma.verification.scores("reach", "level", tolerance="25min").leads[0].n == 7


def test_bad_requests_name_the_field(uma: Client) -> None:
    with pytest.raises(ValidationFailed, match="property"):
        uma.verification.scores("reach", "colour")
    with pytest.raises(ValidationFailed, match="boolean"):
        uma.verification.scores("reach", "alert")
    with pytest.raises(ValidationFailed) as caught:
        uma.verification.add_forecast("reach", "level", [1.0, 2.0], issued_at=T0, step="1h", lower=[0.5])
    assert {p.loc for p in caught.value.problems} == {"lower", "upper"}
    with pytest.raises(ValidationFailed, match="lead"):
        uma.verification.scores("reach", "level", lead="soon")


def test_the_forecast_workflow_records_its_level_series(engine: Engine, uma: Client) -> None:
    """river-reach's forecast workflow keeps its 48 levels as a forecast issued at the rain's first hour."""
    from workflow_data import rain_cube, write_collection

    write_collection(engine.runtime.data_dir / "collections", "rain-forecast", rain_cube(days=2))
    run = uma.workflows.run("reach", "forecast", sync=True)
    assert run.status == "finished", run.error
    # (the app's dataset trigger may run the forecast for the new collection too)
    issued = next(f for f in uma.verification.forecasts("reach", "level", values=True) if f.run_id == run.id)
    assert issued.workflow == "forecast" and issued.run_id == run.id and issued.steps == 48
    assert issued.issued_at == T0 and issued.values is not None
    assert [v.lead_seconds for v in issued.values[:2]] == [3600, 7200]
    assert [v.value for v in issued.values] == pytest.approx(run.value)
    for v in issued.values[:12]:  # the gauge reports what the forecast said, plus 2 cm
        uma.write_state("reach", reported={"level": PropertyWrite(value=v.value + 0.02, timestamp=v.valid_time)})
    report = uma.verification.scores("reach", "level", workflow="forecast")
    assert {g.lead_seconds for g in report.leads} == {3600 * k for k in range(1, 13)}
    assert all(g.bias == pytest.approx(-0.02) for g in report.leads)


def test_out_of_range_input_is_a_422_naming_the_field(uma: Client) -> None:
    with pytest.raises(ValidationFailed, match="step"):
        uma.verification.add_forecast("reach", "level", [1.0, 2.0], issued_at=datetime(9999, 12, 1, tzinfo=UTC),
                                      step="P90D")
    with pytest.raises(ValidationFailed, match="step"):
        uma.verification.add_forecast("reach", "level", [1.0], issued_at=T0, step="P99999D")
    with pytest.raises(ValidationFailed, match=r"probabilities\.2"):
        uma.verification.add_forecast("reach", "level", [1.0], issued_at=T0, step="1h",
                                      probabilities={"2": [1.5]})
    with pytest.raises(ValidationFailed, match="tolerance"):
        uma.verification.scores("reach", "level", tolerance="P9999D")
    assert uma.verification.forecasts("reach") == []  # nothing half-written


def test_the_score_history_is_kept_per_period_and_follows_late_observations(engine: Engine, uma: Client) -> None:
    from twinengine.twins.forecast_models import ScoreRecord

    issue(uma)  # forecasts valid over two days; each recording keeps the (still empty) default history current
    assert uma.verification.history("reach", "level").items == []
    observe(uma, hours=24)  # the first day only
    kept = uma.verification.history("reach", "level", lead="1h")
    assert [i.period_start for i in kept.items] == [T0] and kept.period_seconds == 86400
    # a kept period's scores are those of verification over that period
    day = uma.verification.scores("reach", "level", lead="1h", since=T0, until=T0 + timedelta(days=1))
    (first,) = kept.items
    assert (first.n, first.members, first.workflow) == (day.leads[0].n, 8, "forecast")
    assert first.rmse == pytest.approx(day.leads[0].rmse) and first.crps == pytest.approx(day.leads[0].crps)
    assert first.rank_histogram is not None and len(first.rank_histogram) == 9
    assert sum(first.rank_histogram) == pytest.approx(1.0)

    observe(uma, hours=HOURS)  # the second day's observations arrive
    later = uma.verification.history("reach", "level", lead="1h")
    assert [i.period_start for i in later.items] == [T0, T0 + timedelta(days=1)]
    both = uma.verification.scores("reach", "level", lead="1h", since=T0 + timedelta(days=1))
    assert later.items[1].n == both.leads[0].n and later.items[1].nse == pytest.approx(both.leads[0].nse)

    def computed() -> dict[datetime, datetime]:
        with engine.runtime.db.session(readonly=True) as session:
            return {r.period_start: r.computed_at for r in session.query(ScoreRecord).filter(
                ScoreRecord.period_seconds == 86400, ScoreRecord.lead_seconds == 3600)}

    before = computed()
    assert uma.verification.history("reach", "level").items and computed() == before  # nothing changed: kept
    # a late, corrected observation on the second day: only that day is scored again
    uma.write_state("reach", reported={"level": PropertyWrite(value=truth(31) + 0.5,
                                                              timestamp=T0 + timedelta(hours=31, minutes=1))})
    corrected = uma.verification.history("reach", "level", lead="1h")
    after = computed()
    assert after[T0] == before[T0] and after[T0 + timedelta(days=1)] > before[T0 + timedelta(days=1)]
    assert corrected.items[1].rmse is not None and later.items[1].rmse is not None
    assert corrected.items[1].rmse > later.items[1].rmse  # the nearer, wrong observation counts now
    six = uma.verification.history("reach", "level", period="6h", lead="1h")  # another period length, kept too
    assert len(six.items) == 7 and six.period_seconds == 21600  # lead 1 h is valid at 1, 7, ..., 37 h
    assert sum(i.n for i in six.items) == later.items[0].n + later.items[1].n

    for params, field in (({"period": "10s"}, "period"), ({"period": "soon"}, "period"),
                          ({"property": "alert"}, "property")):
        response = engine.http.get("/api/v1/twins/reach/verification/history",
                                   params={"property": "level", **params}, headers=uma._auth)
        assert response.status_code == 422 and field in response.text, response.text


def test_forecasts_recorded_side_by_side_keep_one_consistent_history(settings: Settings) -> None:
    """Several clients record forecasts of one twin at once while it reports (more clients than a refresh
    needs to collide on PostgreSQL): every forecast is acknowledged, and the kept history equals verification
    over each day."""
    import threading

    from helpers import admin_token as new_admin_token
    from twinengine.api import create_app
    from twinengine.demo.server import InProcessServer
    from twinengine.runtime import Runtime

    runtime = Runtime.from_settings(settings)
    runtime.start()
    clients, each = 4, 6
    try:
        with InProcessServer(create_app(runtime=runtime)) as server, \
                Client(server.url, new_admin_token(settings)) as admin:
            Client(server.url, admin.create_token("ada", "developer").token).publish_app(RIVER_REACH)
            token = admin.create_token("uma", "user").token
            with Client(server.url, token) as owner:
                owner.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
                observe(owner)
            barrier, failures = threading.Barrier(clients), []

            def recorder(n: int) -> None:
                try:
                    with Client(server.url, token, timeout=120) as client:
                        barrier.wait()
                        for k in range(each):
                            start = (n * each + k) % (HOURS - 6)
                            client.verification.add_forecast(
                                "reach", "level", [truth(start + h) + 0.01 * n for h in range(1, 7)],
                                issued_at=T0 + timedelta(hours=start), step="1h", workflow=f"w{n}")
                except BaseException as exc:  # re-raised in the main thread
                    failures.append(exc)

            threads = [threading.Thread(target=recorder, args=(n,)) for n in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert failures == []
            with Client(server.url, token) as owner:
                kept = owner.verification.history("reach", "level", lead="2h")
                for day in (T0, T0 + timedelta(days=1)):
                    now = owner.verification.scores("reach", "level", lead="2h", since=day,
                                                    until=day + timedelta(days=1))
                    rows = {i.workflow: i for i in kept.items if i.period_start == day}
                    assert {g.workflow: g.n for g in now.leads} == {w: r.n for w, r in rows.items()}
                    assert all(rows[g.workflow].rmse == pytest.approx(g.rmse) for g in now.leads)
    finally:
        runtime.close()
