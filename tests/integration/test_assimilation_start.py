"""Where a twin's cycles start, through the REST API on a real engine: the first cycle forecasts the first guess
from its own time to the first observation (it compared them as if simultaneous), observations older than the
first guess are passed over, one at its very time is weighed with no step; each twin of an app draws its own
perturbations (all twins used seed 0); and the analyses come back in bulk, as CSV, Parquet and Arrow."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import Engine, make_app
from twinengine.client import Client
from twinengine.errors import ValidationFailed
from twinengine.twin_assimilation.service import default_seed
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def clock(engine: Engine, tmp_path: Path) -> Client:
    """An app whose model adds 1 to ``h`` each hour: after k steps a member has moved by exactly k."""
    folder = make_app(tmp_path, name="clock", manifest={
        "state": {"h": {"type": "number", "unit": "m", "uncertainty": ["std", "quantiles"]}},
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}},
        "assimilation": {"state": ["h"], "spread": 0.01, "step": {"entrypoint": "clock.model:step", "dt": "1h"},
                         "observations": {"level": {"observes": "h", "error": 0.5}}, "members": 10}},
        files={"clock/model.py": """
            def step(state, parameters, forcing, dt):
                return {"h": state["h"] + dt / 3600.0}
        """})
    engine.as_role("ada", "developer").publish_app(folder)
    return engine.as_role("uma", "user")


def _twin(client: Client, name: str, guess_at: datetime, readings: list[tuple[int, float]]) -> None:
    client.create_twin("clock", name, {"station": "C1"})
    client.write_state(name, reported={"h": PropertyWrite(value=0.0, timestamp=guess_at)})
    client.streams.append(name, "readings", [{"time": (T0 + timedelta(hours=h)).isoformat(), "level": v}
                                             for h, v in readings])


def test_the_first_cycle_forecasts_from_the_first_guess_s_time(clock: Client) -> None:
    # the first guess (0 at T0), a reading an hour before it, then readings that follow the model exactly
    _twin(clock, "late-start", T0, [(-1, 99.0), (3, 3.0), (4, 4.0)])
    got = clock.assimilation.run("late-start", cycles=10)
    assert [c.valid_time for c in got.cycles] == [T0 + timedelta(hours=3), T0 + timedelta(hours=4)]
    first = clock.assimilation.get("late-start", 1)
    inn = (first.innovations or {})["level"]
    # forecast three hours from the first guess: the background is 3 (it was 0, compared with 3 as if at T0)
    assert inn.background == pytest.approx(3.0, abs=0.05) and abs(inn.innovation) < 0.05
    assert first.observations and first.observations[0]["offset"] == 1  # the reading before it was passed over
    assert got.cycles[1].innovation_rms is not None and got.cycles[1].innovation_rms < 0.05
    # a reading at the first guess's very time is weighed with no step before it
    _twin(clock, "same-time", T0 + timedelta(hours=2), [(2, 0.0), (3, 1.0)])
    same = clock.assimilation.run("same-time", cycles=10).cycles
    assert [c.valid_time for c in same] == [T0 + timedelta(hours=2), T0 + timedelta(hours=3)]
    assert (clock.assimilation.get("same-time", 1).innovations or {})["level"].background == pytest.approx(0.0,
                                                                                                          abs=0.05)
    # every reading older than the first guess: nothing to assimilate
    _twin(clock, "all-late", T0 + timedelta(hours=10), [(1, 1.0), (2, 2.0)])
    nothing = clock.assimilation.run("all-late", cycles=10)
    assert nothing.cycles == [] and nothing.pending == 0


def test_each_twin_of_an_app_draws_its_own_perturbations(clock: Client) -> None:
    for name in ("twin-a", "twin-b"):
        _twin(clock, name, T0, [(1, 1.0), (2, 2.0)])
    a, b = (clock.assimilation.run(name, cycles=10).cycles for name in ("twin-a", "twin-b"))
    assert [c.seed for c in a] == [default_seed("twin-a")] * 2 and [c.seed for c in b] == [default_seed("twin-b")] * 2
    assert default_seed("twin-a") != default_seed("twin-b") and default_seed("twin-a") == default_seed("twin-a")
    ensemble = [clock.assimilation.get(name, 1).analysis for name in ("twin-a", "twin-b")]
    assert ensemble[0] != ensemble[1]  # other first ensembles: other analyses of the same readings
    # an explicit seed still gives the same analysis to both
    for name in ("twin-c", "twin-d"):
        _twin(clock, name, T0, [(1, 1.0)])
    c, d = (clock.assimilation.run(name, seed=5).cycles[0] for name in ("twin-c", "twin-d"))
    assert c.seed == d.seed == 5
    assert clock.assimilation.get("twin-c", 1).analysis == clock.assimilation.get("twin-d", 1).analysis


def test_the_analyses_come_back_in_bulk(clock: Client) -> None:
    _twin(clock, "bulk", T0, [(h, float(h)) for h in range(1, 8)])
    cycles = clock.assimilation.run("bulk", cycles=10).cycles
    table = pq.read_table(io.BytesIO(clock.assimilation.history("bulk", format="parquet")))
    assert table.column("cycle").to_pylist() == list(range(1, 8))
    assert table.column("revision").to_pylist() == [c.revision for c in cycles]
    assert table.column("valid_time").to_pylist() == [c.valid_time for c in cycles]
    for row, cycle in zip(table.to_pylist(), cycles, strict=True):
        one = clock.assimilation.get("bulk", cycle.number)
        assert row["h"] == pytest.approx((one.analysis or {})["h"]["mean"], rel=1e-12)
        assert row["h:std"] == pytest.approx((one.analysis or {})["h"]["std"], rel=1e-12)
        assert row["h:q05"] <= row["h:q50"] <= row["h:q95"] and row["spread"] == pytest.approx(cycle.spread)
    # the revision's own quantiles are the table's
    value = clock.get_state("bulk").reported["h"]
    assert value.uncertainty is not None and value.uncertainty.quantiles is not None
    assert value.uncertainty.quantiles["0.95"] == pytest.approx(table.column("h:q95").to_pylist()[-1])
    # CSV and an Arrow stream say the same; after pages on
    rows = list(csv.DictReader(io.StringIO(clock.assimilation.history("bulk", format="csv", after=5).decode())))
    assert [int(r["cycle"]) for r in rows] == [6, 7] and float(rows[-1]["h"]) == pytest.approx(table["h"][-1].as_py())
    arrow = pa.ipc.open_stream(clock.assimilation.history("bulk", format="arrow", limit=3)).read_all()
    assert arrow.column("cycle").to_pylist() == [1, 2, 3]
    assert np.allclose(arrow.column("h").to_numpy(), table.column("h").to_numpy()[:3])
    with pytest.raises(ValidationFailed, match="format"):
        clock.assimilation.history("bulk", format="xlsx")  # type: ignore[arg-type]


def test_the_bulk_history_is_read_in_pages_and_bounded(clock: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records are parsed a page at a time, and an answer holds at most ``MAX_VALUES`` analysis values (a large
    state gets fewer rows; ``after`` pages on): here 4 rows of h's 5 columns."""
    from twinengine.twin_assimilation import history

    _twin(clock, "paged", T0, [(h, float(h)) for h in range(1, 8)])
    clock.assimilation.run("paged", cycles=10)
    whole = pq.read_table(io.BytesIO(clock.assimilation.history("paged", format="parquet")))
    monkeypatch.setattr(history, "FIRST_PAGE", 2)
    monkeypatch.setattr(history, "PAGE", 3)
    assert pq.read_table(io.BytesIO(clock.assimilation.history("paged", format="parquet"))).equals(whole)
    monkeypatch.setattr(history, "MAX_VALUES", 20)
    first = pq.read_table(io.BytesIO(clock.assimilation.history("paged", format="parquet")))
    rest = pq.read_table(io.BytesIO(clock.assimilation.history("paged", format="parquet", after=4)))
    assert first.column("cycle").to_pylist() == [1, 2, 3, 4] and rest.column("cycle").to_pylist() == [5, 6, 7]
    assert pa.concat_tables([first, rest]).equals(whole)


def test_an_app_may_write_one_revision_per_batch(engine: Engine, tmp_path: Path) -> None:
    """``revisions: batch``: the last analysis of each batch the engine writes becomes a revision, every cycle
    keeps its own in its record (the bulk history reads them all); the state is the latest analysis."""
    folder = make_app(tmp_path, name="fast", manifest={
        "state": {"h": {"type": "number", "unit": "m", "uncertainty": ["std", "quantiles"]}},
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}},
        "assimilation": {"state": ["h"], "spread": 0.5, "step": {"entrypoint": "fast.model:step", "dt": "1h"},
                         "observations": {"level": {"observes": "h", "error": 0.5}}, "members": 10,
                         "revisions": "batch"}},
        files={"fast/model.py": """
            def step(state, parameters, forcing, dt):
                return dict(state)
        """})
    engine.as_role("ada", "developer").publish_app(folder)
    uma = engine.as_role("uma", "user")
    _twin_of(uma, "fast", "fast", [(h, 1.0 + 0.1 * h) for h in range(1, 13)])
    head = uma.get_twin("fast").head_revision
    got = uma.assimilation.run("fast", cycles=12).cycles
    assert len(got) == 12 and len({c.revision for c in got}) < 12  # revisions shared by the cycles of a batch
    assert uma.get_twin("fast").head_revision - head == len({c.revision for c in got})
    last = uma.assimilation.get("fast", 12)
    value = uma.get_state("fast").reported["h"]
    assert value.revision == last.revision and value.value == pytest.approx((last.analysis or {})["h"]["mean"])
    table = pq.read_table(io.BytesIO(uma.assimilation.history("fast", format="parquet")))
    assert table.column("cycle").to_pylist() == list(range(1, 13))
    means = [(uma.assimilation.get("fast", c.number).analysis or {})["h"]["mean"] for c in got]
    assert np.allclose(table.column("h").to_numpy(), means, rtol=1e-12) and len(set(means)) == 12
    inside = [c for c, after in itertools.pairwise(got) if c.revision == after.revision]
    assert inside  # a cycle whose analysis only its record keeps: its provenance says so
    document = uma.assimilation.get("fast", inside[0].number).provenance or {}
    assert any(key.endswith("/analysis") for key in document.get("entity", {})), document


def _twin_of(client: Client, app: str, name: str, readings: list[tuple[int, float]]) -> None:
    client.create_twin(app, name, {"station": "F1"})
    client.write_state(name, reported={"h": PropertyWrite(value=0.0, timestamp=T0)})
    client.streams.append(name, "readings", [{"time": (T0 + timedelta(hours=h)).isoformat(), "level": v}
                                             for h, v in readings])
