"""A list of twins at a glance (``GET /twins?glance=true``): each twin's app title, place, status (alert before
stale before ok), flagged values and last reading, read for the whole page at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import MINIMAL_STATE, Engine, make_app
from twinengine.twins.schemas import PropertyWrite

STATE = {**MINIMAL_STATE,
         "level": {"type": "number", "unit": "m", "quality": [{"check": "range", "min": 0, "max": 50},
                                                             {"check": "gap", "every": "1h", "tolerance": "15min"}]},
         "flood_alert": {"type": "boolean"},
         "head": {"type": "number", "unit": "m", "key": "well"}}


def test_each_twin_says_its_status_place_and_last_reading(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="glance-app", manifest={"state": STATE}))
    uma = engine.as_role("uma", "user")
    for name, station in (("calm", "ST-1"), ("alarmed", "ST-2"), ("silent", "ST-3"), ("quiet", "ST-4")):
        uma.create_twin("glance-app@1.0.0", name, {"station": station})
    now = datetime.now(UTC)
    uma.write_state("calm", reported={"level": PropertyWrite(value=1.5, timestamp=now - timedelta(minutes=14)),
                                      "flood_alert": PropertyWrite(value=False, timestamp=now - timedelta(minutes=20)),
                                      "head[ow1]": PropertyWrite(value=3.0, timestamp=now - timedelta(minutes=30))})
    uma.write_state("alarmed", reported={"level": PropertyWrite(value=99.0, timestamp=now - timedelta(hours=3)),
                                         "flood_alert": PropertyWrite(value=True, timestamp=now)})
    uma.write_state("silent", reported={"level": PropertyWrite(value=2.0, timestamp=now - timedelta(hours=3))})
    answer = engine.http.get("/api/v1/twins", params={"glance": "true"}, headers=engine.headers(
        engine.token("uma", "user")))
    assert answer.status_code == 200, answer.text
    seen = {t["name"]: t["glance"] for t in answer.json()["items"]}
    assert {n: g["status"] for n, g in seen.items()} == {"calm": "ok", "alarmed": "alert", "silent": "stale",
                                                         "quiet": "ok"}
    assert seen["alarmed"]["alerts"] == ["flood_alert"] and seen["alarmed"]["stale"] == ["level"]
    assert seen["alarmed"]["flagged"] == {"level": "bad"}  # 99 m fails the range check: kept, flagged
    assert seen["alarmed"]["reasons"][:2] == ["flood_alert is on", "level is stale"]
    assert seen["silent"]["reasons"] == ["level is stale"]
    # the last reading is of what the app expects regularly (level's gap check), not the alert computed now
    assert seen["alarmed"]["last_property"] == "level"
    calm = seen["calm"]
    assert calm["title"] == "Test app glance-app" and calm["place"] == "ST-1" and calm["reasons"] == []
    assert calm["last_property"] == "level"
    assert abs(datetime.fromisoformat(calm["last_reading"]) - (now - timedelta(minutes=14))) < timedelta(seconds=1)
    assert seen["quiet"]["last_reading"] is None and seen["quiet"]["status"] == "ok"
    listed = {t.name: t.glance for t in uma.list_twins(glance=True).items}  # the SDK reads the same
    assert listed["alarmed"] is not None and listed["alarmed"].status == "alert"
    assert all(t.glance is None for t in uma.list_twins().items)
    plain = engine.http.get("/api/v1/twins", headers=engine.headers(engine.token("uma", "user"))).json()
    assert all("glance" not in t for t in plain["items"])  # only asked for: other clients pay nothing
    refused = engine.http.get("/api/v1/twins", params={"glance": "maybe"},
                              headers=engine.headers(engine.token("uma", "user")))
    assert refused.status_code == 422 and "glance" in refused.text


def test_place_names_a_station_and_a_point_location(engine: Engine, tmp_path: Path) -> None:
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="glance-app", manifest={"state": STATE}))
    uma = engine.as_role("uma", "user")
    uma.create_twin("glance-app@1.0.0", "placed", {"station": "RR-01"},
                    location={"type": "Point", "coordinates": [8.2, 46.1]})
    answer = engine.http.get("/api/v1/twins", params={"glance": "true"},
                             headers=engine.headers(engine.token("uma", "user"))).json()
    assert answer["items"][0]["glance"]["place"] == "RR-01 (46.100°N 8.200°E)"
