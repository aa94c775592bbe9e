"""``twin app test`` checks a manifest's ``assimilation`` and ``calibration`` sections as it checks the others:
a few cycles of the app's filter and a small calibration run on the local twin's sample records, each an item
that passes, or fails naming the app's line; without the records they read, each is skipped saying why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers import make_app
from twinengine.appdev.harness import Item, check_app

MODEL = '''
import math


def first_level(ctx, records):
    for r in records:
        if ctx.reported("x") is None:  # the first record starts the twin's state
            ctx.update_state(timestamp=r["time"], x=r["y"])


def step(state, parameters, forcing, dt):
    return {"x": state["x"] * math.exp(-parameters["k"] * dt / 3600.0)}


def simulate(parameters, forcing):
    x, out = forcing["y0"][0], []
    for _ in forcing["y0"]:
        out.append(x)
        x *= math.exp(-parameters["k"] / 4.0)
    return out
'''
BROKEN_STEP = '''

def step(state, parameters, forcing, dt):
    return {"x": state["x"] * parameters["rate"]}  # no such parameter
'''


def decay_app(root: Path, *, samples: bool = True, model: str = MODEL) -> Path:
    manifest: dict[str, Any] = {
        "parameters": {"type": "object", "properties": {"k": {"type": "number", "minimum": 0.01, "maximum": 2,
                                                              "default": 0.5}}},
        "streams": {"obs": {"fields": {"time": {"type": "timestamp"}, "y": {"type": "float"},
                                       "y0": {"type": "float"}}}},
        "state": {"x": {"type": "number"}},
        "functions": {"first": {"entrypoint": "decay.model:first_level", "stream": "obs"}},
        "assimilation": {"state": ["x"], "spread": 0.2, "step": {"entrypoint": "decay.model:step", "dt": "15min"},
                         "observations": {"y": {"observes": "x", "error": 0.05}}, "members": 8},
        "calibration": {"parameters": {"k": {}}, "model": {"entrypoint": "decay.model:simulate",
                                                            "forcing": {"y0": "y0"}},
                        "observed": {"stream": "obs", "field": "y"}, "objective": "rmse", "runs": 200},
    }
    folder = make_app(root, name="decay", version="0.1.0", manifest=manifest, files={"decay/model.py": model})
    if samples:
        t0 = datetime(2026, 3, 1, tzinfo=UTC)
        rows = [{"time": (t0 + timedelta(minutes=15 * i)).isoformat(), "y": round(4.0 * 0.88 ** i, 4), "y0": 4.0}
                for i in range(12)]
        (folder / "data").mkdir(exist_ok=True)
        (folder / "data" / "obs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def items(found: list[Item]) -> dict[str, Item]:
    return {item.name: item for item in found}


def test_the_sections_are_run_on_the_samples(tmp_path: Path) -> None:
    found = items(check_app(decay_app(tmp_path), run_tests=False, train=False))
    assert found["function first"].ok, found["function first"]
    assert found["assimilation"].ok and not found["assimilation"].skipped, found["assimilation"]
    assert found["calibration"].ok and not found["calibration"].skipped, found["calibration"]


def test_a_broken_step_fails_the_assimilation_item_naming_it(tmp_path: Path) -> None:
    found = items(check_app(decay_app(tmp_path, model=MODEL + BROKEN_STEP), run_tests=False, train=False))
    item = found["assimilation"]
    assert not item.ok and item.error is not None and "KeyError: 'rate'" in item.error, item
    assert item.where == "assimilation.step.entrypoint", item
    assert found["calibration"].ok  # the other section is checked on its own


def test_without_samples_both_are_skipped_saying_why(tmp_path: Path) -> None:
    found = items(check_app(decay_app(tmp_path, samples=False), run_tests=False, train=False))
    assert found["assimilation"].skipped and "data/obs.jsonl" in (found["assimilation"].error or "")
    assert found["calibration"].skipped and "data/obs.jsonl" in (found["calibration"].error or "")
