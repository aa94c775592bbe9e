"""virgo-glitch, the fast-channel reference app, in an engine: seeded seconds of ten 4096-sample channels go in
as ten Arrow IPC streams (one second of one channel lost); the function on arrival (in the app's sandboxed
worker) joins them second by second, vetoes the glitch windows and publishes
the whitened strain to ``cleaned``, which reads back as arrays with the simulator's truth and, through
``load_stream`` in the app's spectrum workflow, as a white spectrum; ``twin app test`` passes the app, its
science test included."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from helpers import Engine, need_sandbox
from streams_fixtures import drop_streams, eventually, stream_engine, stream_settings  # noqa: F401
from twinengine.cli.main import app as cli_app

APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "virgo-glitch"
FRAMES = 40


@pytest.fixture
def engine(tmp_path: Path, drop_streams: list[Any]) -> Iterator[Engine]:  # noqa: F811
    with stream_engine(stream_settings(tmp_path / "data", "local"), drop_streams) as started:
        yield started


def simulated(n: int, seed: int) -> tuple[dict[str, pa.Table], list[Any]]:
    """Seeded frames, as the ten tables of the ten streams the data acquisition sends."""
    sys.path.insert(0, str(APP))
    try:
        from virgo_glitch.simulator import by_stream, frames
    finally:
        sys.path.remove(str(APP))
    sent = list(frames(n, seed=seed))
    tables = {}
    for stream, records in by_stream(sent).items():
        field = next(k for k in records[0] if k != "time")
        tables[stream] = pa.table({
            "time": pa.array([r["time"] for r in records], pa.timestamp("us", tz="UTC")),
            field: pa.FixedSizeListArray.from_arrays(pa.array(np.concatenate([r[field] for r in records])), 4096)})
    return tables, sent


@pytest.mark.slow
def test_frames_in_cleaned_strain_and_vetoes_out(engine: Engine) -> None:
    need_sandbox()
    engine.as_role("ada", "developer").publish_app(APP)
    uma = engine.as_role("uma", "user")
    uma.create_twin("virgo-glitch@0.2.0", "v1", {})
    tables, sent = simulated(FRAMES, seed=11)
    assert len(tables) == 10
    lost = 5  # one second of the uncoupled magnetometer never arrives
    for stream, table in tables.items():  # the strain first: its records wait for their auxiliary channels
        if stream == "mag_y":
            table = pa.concat_tables([table.slice(0, lost), table.slice(lost + 1)])
        assert uma.streams.append("v1", stream, table).count == table.num_rows

    cleaned = eventually(lambda: (t := uma.streams.read_arrow("v1", "cleaned")).num_rows == FRAMES and t,
                         timeout=120)
    assert cleaned.schema.field("h").type == pa.list_(pa.float64(), 4096)
    truth = [f.kind == "glitch" for f in sent]
    vetoed = cleaned.column("vetoed").to_pylist()
    assert sum(truth) >= 3 and vetoed == truth  # every glitch window of this seed vetoed, nothing else
    white = np.stack(cleaned.column("h").to_numpy(zero_copy_only=False))
    clean = [i for i, kind in enumerate(truth) if not kind]
    assert abs(np.std(white[clean][:, 512:-512]) - 1) < 0.1  # whitened to unit variance
    for i in (i for i, kind in enumerate(truth) if kind):  # gated around the glitch
        assert np.count_nonzero(white[i] == 0) >= 0.125 * 4096
    state = eventually(lambda: (s := uma.get_state("v1")).reported.get("windows") and
                       s.reported["windows"].value == FRAMES and s)
    assert state.reported["vetoed_windows"].value == sum(truth)
    assert uma.streams.dead_letters("v1") == []
    # the frame without its magnetometer second was judged on the other channels, and says so
    assert [i for i, m in enumerate(cleaned.column("missing").to_pylist()) if m] == [lost]
    assert cleaned.column("missing")[lost].as_py() == "mag_y"
    assert state.reported["incomplete_windows"].value == 1
    (fn,) = uma.streams.functions("v1")
    assert fn.stream == "strain" and len(fn.joins) == 9 and fn.offset == FRAMES
    # the spectrum workflow reads the cleaned stream back through load_stream: (record, h_sample)
    run = uma.workflows.run("v1", "spectrum", sync=True)
    assert run.status == "finished", run.error
    reported = uma.get_state("v1").reported
    assert reported["spectrum_windows"].value == FRAMES - sum(truth)
    assert 1 <= reported["spectrum_flatness"].value < 1.5  # white: the coloured strain spans decades


@pytest.mark.slow
def test_twin_app_test_passes_the_app() -> None:
    need_sandbox()
    result = CliRunner().invoke(cli_app, ["--json", "app", "test", str(APP)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = {i["item"]: i for i in json.loads(result.output)["items"]}
    for item in ("manifest", "tests", "publish", "twin", "function veto", "workflow spectrum",
                 "training glitch_shapes"):
        assert found[item]["ok"] and not found[item]["skipped"], found.get(item)
