"""Input quality through a real engine on both stores: river-reach gauges with known faults are flagged as
they are appended (state carried across batches and across a restart), read back with their flags and
filtered by flag, summarised per window by the indicators API and /metrics; the app's function leaves bad
readings out, a buffer can too; a bad declaration is refused naming the field."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import RIVER_REACH, Engine, admin_token
from streams_fixtures import (  # noqa: F401
    EXPECTED,
    drop_streams,
    eventually,
    faulty_gauges,
    gauge,
    start_engine,
    stream_engine,
    stream_settings,
)
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import ValidationFailed

PATH = "/api/v1/twins/reach/streams/gauges"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return stream_settings(tmp_path / "data", "local", database_url)


start = start_engine


@pytest.fixture
def engine(settings: Settings, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    with stream_engine(settings, drop_streams) as started:
        yield started


@pytest.fixture
def uma(engine: Engine) -> Client:
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    client = engine.as_role("uma", "user")
    client.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
    return client


def test_faulty_gauges_are_flagged_filtered_and_summarised(engine: Engine, uma: Client) -> None:
    records = faulty_gauges()
    uma.streams.append("reach", "gauges", records[:10])  # the stuck run spans both batches
    uma.streams.append("reach", "gauges", records[10:])
    page = uma.streams.read("reach", "gauges")
    flags = {r["_offset"]: (r["_quality"], r["_checks"]) for r in page.items}
    assert {o: f for o, f in flags.items() if f[0] != "good"} == EXPECTED
    assert all(checks is None for flag, checks in flags.values() if flag == "good")

    assert [r["_offset"] for r in uma.streams.read("reach", "gauges", quality=["bad"]).items] == [4, 17]
    assert len(uma.streams.read("reach", "gauges", quality=["good", "suspect"]).items) == 16
    table = uma.streams.read_arrow("reach", "gauges", quality=["suspect"])
    assert table.column("_offset").to_pylist() == [13, 15] and table.column("_quality").to_pylist() == ["suspect"] * 2
    r = engine.http.get(f"{PATH}/records", params={"quality": "excellent"},
                        headers=engine.headers(engine.token("uma", "user")))
    assert r.status_code == 422 and "quality" in r.text

    report = uma.streams.quality("reach", "gauges", window="1h")
    total = report.total
    assert (total.records, total.good, total.suspect, total.bad) == (18, 14, 2, 2)
    assert total.checks == {"flatline:level": 1, "gap": 1, "range:level": 1, "spike:level": 2}
    assert report.cadence_s == 900 and report.sources == 1 and total.completeness == 18 / 20
    assert [w.records for w in report.windows] == [4, 4, 4, 3, 3]  # 15 and 16 straddle the fourth and fifth hour
    assert report.windows[3].completeness == 0.75 and report.windows[3].complete is False
    assert report.windows[0].complete is True
    assert report.windows[1].bad == 1 and report.windows[1].shares["bad"] == 0.25
    assert total.lateness_median_s is not None and total.lateness_median_s > 0  # 2026 events, sent later

    bad = engine.http.get(f"{PATH}/quality", params={"window": "soon"},
                          headers=engine.headers(engine.token("uma", "user")))
    assert bad.status_code == 422 and bad.json()["details"][0]["loc"] == "window"

    metrics = engine.http.get("/metrics", headers=engine.headers(engine.admin_token)).text
    key = f"{uma.get_twin('reach').id}/gauges"
    assert f'twin_stream_quality_records_total{{flag="bad",stream="{key}"}} 2.0' in metrics
    assert f'twin_stream_quality_check_failures_total{{check="gap",stream="{key}"}} 1.0' in metrics

    # gauge_to_state excludes bad readings: its checkpoint passes them, no call sees them
    function = eventually(lambda: (f := uma.streams.functions("reach")[0]) and f.offset == 18 and f)
    assert function.calls == 16
    levels = {v.value for v in uma.history("reach", "level", limit=1000).items}
    assert 1.08 in levels and 4.04 not in levels and 99.0 not in levels


def test_buffers_leave_out_excluded_flags(engine: Engine, uma: Client) -> None:
    created = uma.streams.create_buffer("reach", "clean", "gauges", policy="external", exclude=["bad"])
    assert [f.value for f in created.quality.exclude] == ["bad"]
    uma.streams.create_buffer("reach", "all", "gauges", policy="external")
    uma.streams.append("reach", "gauges", faulty_gauges())
    clean = uma.streams.fill_records("reach", "clean", uma.streams.seal_buffer("reach", "clean").id)
    every = uma.streams.fill_records("reach", "all", uma.streams.seal_buffer("reach", "all").id)
    assert every.num_rows == 18 and clean.num_rows == 16
    assert "bad" not in clean.column("_quality").to_pylist()
    assert 99.0 not in clean.column("level").to_pylist()
    r = engine.http.post("/api/v1/twins/reach/buffers", headers=engine.headers(engine.token("uma", "user")),
                         json={"name": "x", "stream": "gauges", "policy": "external", "quality": {"exclude": ["good"]}})
    assert r.status_code == 422 and "quality.exclude" in r.json()["details"][0]["loc"], r.text


@pytest.mark.slow
def test_the_carried_state_survives_a_restart(settings: Settings, drop_streams: list[Any]) -> None:  # noqa: F811
    stuck = [gauge(i, level=1.5) for i in range(8)]
    runtime, http = start(settings, drop_streams)
    with http:
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token=admin_token(settings))  # type: ignore[arg-type]
        engine.as_role("ada", "developer").publish_app(RIVER_REACH)
        uma = engine.as_role("uma", "user")
        uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
        uma.streams.append("reach", "gauges", stuck[:4])
    runtime.close()
    runtime, http = start(settings, drop_streams)  # a new engine on the same data: the hub replays the tail
    with http:
        engine = Engine(runtime=runtime, app=http.app, http=http, admin_token=admin_token(settings))  # type: ignore[arg-type]
        uma = engine.as_role("uma", "user")
        uma.streams.append("reach", "gauges", stuck[4:])
        flags = [r["_quality"] for r in uma.streams.read("reach", "gauges").items]
    runtime.close()
    assert flags == ["good"] * 5 + ["suspect"] * 3  # the sixth identical level on is a stuck sensor


def test_a_bad_quality_declaration_is_refused_naming_the_field(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "river-reach"
    shutil.copytree(RIVER_REACH, folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = yaml.safe_load((folder / "twinapp.yaml").read_text())
    manifest["streams"]["gauges"]["quality"][1] = {"check": "range", "field": "rain", "min": 10, "max": 1}
    (folder / "twinapp.yaml").write_text(json.dumps(manifest))
    with pytest.raises(ValidationFailed) as refused:
        engine.as_role("ada", "developer").publish_app(folder)
    assert refused.value.status == 422
    assert "streams.gauges.quality[1].max" in {p.loc for p in refused.value.problems}
