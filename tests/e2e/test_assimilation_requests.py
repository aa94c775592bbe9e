"""Assimilation from the outside: ``twin app validate`` calls the step once on a sample state (a step returning
an incomplete state passed, to fail at the first cycle of the first twin); the SDK waits for a request whose
cycles outlast its read timeout (it said "engine did not answer" of cycles the engine finished), or asks in
requests of about a second with progress; ``twin assimilate --history`` writes the analyses in bulk."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from helpers import LiveEngine, make_app, need_sandbox
from twinengine.cli.main import app as cli_app
from twinengine.client import Client
from twinengine.twins.schemas import PropertyWrite

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _app(root: Path, step: str, *, form: str = "mapping") -> Path:
    return make_app(root, name="tank", manifest={
        "state": {"h": {"type": "number", "unit": "m", "minimum": 0, "maximum": 10, "uncertainty": ["std"]},
                  "q": {"type": "number", "unit": "m3/s"}},
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"},
                                            "rain": {"type": "float", "nullable": True}}}},
        "assimilation": {"state": ["h", "q"], "spread": 0.1,
                         "step": {"entrypoint": "tank.model:step", "dt": "1h", "forcing": {"rain": "rain"},
                                  "state_form": form},
                         "observations": {"level": {"observes": "h", "error": 0.1}}, "members": 5}},
        files={"tank/model.py": step})


def _validate(folder: Path, expect: int) -> dict[str, object]:
    result = CliRunner().invoke(cli_app, ["--json", "app", "validate", str(folder)], catch_exceptions=False,
                                env={"COLUMNS": "200"})
    assert result.exit_code == expect, result.output
    found: dict[str, object] = json.loads(result.output)
    return found


def test_validate_calls_the_step_once_on_a_sample_state(tmp_path: Path) -> None:
    need_sandbox()
    incomplete = _app(tmp_path / "a", """
        def step(state, parameters, forcing, dt):
            return {"h": state["h"] + forcing["rain"] * dt / 3600}
    """)
    found = _validate(incomplete, expect=1)
    assert [p["loc"] for p in found["problems"]] == ["assimilation.step.entrypoint"]  # type: ignore[index, union-attr]
    message = found["problems"][0]["msg"]  # type: ignore[index]
    assert "returned no value for q" in message and "h=5" in message and "forcing 0" in message, message
    wrong_shape = _app(tmp_path / "b", """
        def step(x, parameters, forcing, dt):
            return x[:, :1]
    """, form="ensemble")
    message = _validate(wrong_shape, expect=1)["problems"][0]["msg"]  # type: ignore[index]
    assert "shape (2, 1), not (2, 2)" in message, message
    whole = _app(tmp_path / "c", """
        def step(x, parameters, forcing, dt):
            return x + forcing["rain"]
    """, form="ensemble")
    assert _validate(whole, expect=0)["valid"] is True


def test_long_requests_are_waited_for_and_the_history_comes_in_bulk(live: LiveEngine, tmp_path: Path) -> None:
    folder = _app(tmp_path, """
        import time

        def step(state, parameters, forcing, dt):
            time.sleep(0.02)  # 5 members: 0.1 s a cycle
            return {"h": state["h"], "q": state["q"]}
    """)
    with live.client() as admin:
        admin.publish_app(folder)
        admin.create_twin("tank", "tank", {"station": "T1"})
        admin.write_state("tank", reported={"h": PropertyWrite(value=1.0, timestamp=T0),
                                            "q": PropertyWrite(value=0.0, timestamp=T0)})
        admin.streams.append("tank", "readings", [{"time": (T0 + timedelta(hours=k)).isoformat(), "level": 1.0,
                                                   "rain": 0.0} for k in range(1, 51)])
    with Client(live.url, live.admin_token, timeout=0.5) as impatient:  # 10 cycles take about 1 s
        got = impatient.assimilation.run("tank", cycles=10)
        assert [c.number for c in got.cycles] == list(range(1, 11)) and got.pending == 40
        seen: list[tuple[int, int]] = []
        rest = impatient.assimilation.run("tank", cycles=1000, progress=lambda done, total: seen.append((done, total)))
    assert [c.number for c in rest.cycles] == list(range(11, 51)) and rest.pending == 0
    assert len(seen) >= 2 and seen[0] == (20, 40) and seen[-1] == (40, 40)  # the first request asks for 20
    assert [d for d, _t in seen] == sorted({d for d, _t in seen})
    # the analyses, a row per cycle: CSV and Parquet files through the CLI
    shown = live.twin("assimilate", "tank", "--history", str(tmp_path / "tank.csv"))
    assert "written to" in shown
    rows = list(csv.DictReader(io.StringIO((tmp_path / "tank.csv").read_text())))
    assert [int(r["cycle"]) for r in rows] == list(range(1, 51)) and {"h", "h:std", "q:q95"} <= set(rows[0])
    live.twin("assimilate", "tank", "--history", str(tmp_path / "tank.parquet"))
    assert pq.read_table(tmp_path / "tank.parquet").num_rows == 50
    bad = live.twin("assimilate", "tank", "--history", str(tmp_path / "tank.xlsx"), expect=2)
    assert ".csv" in bad and "Traceback" not in bad
    bad = live.twin("assimilate", "tank", "--history", str(tmp_path / "no" / "such" / "tank.csv"), expect=2)
    assert "--history: cannot write" in bad and "Traceback" not in bad
