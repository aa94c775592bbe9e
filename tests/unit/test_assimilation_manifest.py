"""The ``assimilation:`` section of a manifest: shorthands, validation errors that name the field, references to
streams and state checked against the rest of the manifest, entrypoints checked like the others."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import make_app
from twinengine.catalog.validate import check_app_dir, check_manifest_data, declared_entrypoints

REACH = Path(__file__).parents[2] / "examples" / "apps" / "river-reach" / "twinapp.yaml"


def _reach() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(REACH.read_text())
    return data


def _problems(data: dict[str, Any]) -> dict[str, str]:
    _manifest, problems = check_manifest_data(data)
    return {p.loc: p.msg for p in problems}


def test_the_reference_apps_declare_a_valid_section() -> None:
    manifest, problems = check_manifest_data(_reach())
    assert problems == [] and manifest is not None and manifest.assimilation is not None
    spec = manifest.assimilation
    assert spec.state == ["storage"] and spec.method == "etkf" and spec.members == 20
    level = spec.observations["level"]
    assert level.operator == "river_reach.assimilation:level" and level.error.std == 0.03
    assert spec.step.dt.total_seconds() == 900 and spec.step.forcing == {"rain": "rain"}
    l96, problems = check_manifest_data(yaml.safe_load((REACH.parents[1] / "lorenz96" / "twinapp.yaml").read_text()))
    assert problems == [] and l96 is not None and l96.assimilation is not None
    assert len(l96.assimilation.state) == 40 and l96.assimilation.observations["y7"].observes == "x[7]"


@pytest.mark.parametrize(("error", "field", "value"), [
    ({"std": 0.1}, "std", 0.1),
    (0.1, "std", 0.1),
    ("record", "record", True),
    ("river_reach.assimilation:error", "entrypoint", "river_reach.assimilation:error"),
])
def test_error_shorthands(error: Any, field: str, value: Any) -> None:
    data = _reach()
    data["assimilation"]["observations"]["level"]["error"] = error
    if error == "record":
        data["streams"]["gauges"]["fields"]["level"]["uncertainty"] = ["std"]
    manifest, problems = check_manifest_data(data)
    assert problems == [] and manifest is not None and manifest.assimilation is not None
    assert getattr(manifest.assimilation.observations["level"].error, field) == value


@pytest.mark.parametrize(("path", "value", "loc", "words"), [
    (("observations", "level", "error"), -1, "assimilation.observations.level.error.std", "greater than 0"),
    (("observations", "level", "error"), {"std": 1, "record": True}, "assimilation.observations.level.error",
     "exactly one"),
    (("observations", "level", "error"), "record", "assimilation.observations.level.error", "declares no std"),
    (("observations", "level", "error"), "not an entrypoint", "assimilation.observations.level.error.entrypoint",
     "pattern"),
    (("observations", "level", "observes"), "storage", "assimilation.observations.level", "not both"),
    (("observations", "level", "field"), "rain2", "assimilation.observations.level.field", "no field 'rain2'"),
    (("observations", "level", "field"), "station", "assimilation.observations.level.field", "a number"),
    (("observations", "level", "stream"), "nope", "assimilation.observations.level.stream", "not declared"),
    (("method",), "kalman", "assimilation.method", "'enkf'"),
    (("members",), 1, "assimilation.members", "greater than or equal to 2"),
    (("members",), 10**6, "assimilation.members", "less than or equal to 1000"),
    (("state",), ["storage", "alert"], "assimilation.state[1]", "is a boolean"),
    (("state",), ["storrage"], "assimilation.state[0]", "not a state property"),
    (("state",), [], "assimilation.state", "at least 1"),
    (("first_guess",), {"level": ["storage_from_level"]}, "assimilation.first_guess.level",
     "not in the state vector"),
    (("first_guess",), {"storage": ["storrage_from_level"]}, "assimilation.first_guess.storage", "not declared"),
    (("first_guess",), {"storage": ["alert"]}, "assimilation.first_guess.storage", "not one number"),
    (("step", "dt"), "0s", "assimilation.step.dt", "positive"),
    (("step", "forcing"), {"rain": "snow"}, "assimilation.step.forcing.rain", "no field 'snow'"),
    (("step", "noise"), {"level": 1.0}, "assimilation", "not in the state vector"),
    (("tuning", "inflation"), 0.5, "assimilation.tuning.inflation", "greater than or equal to 1"),
    (("tuning", "threshold"), 2, "assimilation.tuning.threshold", "less than or equal to 1"),
    (("tuning", "radus"), 2, "assimilation.tuning.radus", "unknown field"),
    (("method",), "letkf", "assimilation.tuning.radius", "localisation radius"),
])
def test_errors_name_the_field(path: tuple[str, ...], value: Any, loc: str, words: str) -> None:
    data = _reach()
    target = data["assimilation"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    problems = _problems(data)
    assert loc in problems, problems
    assert words in problems[loc], problems[loc]


def test_an_observation_of_an_entry_outside_the_state_vector_is_refused() -> None:
    data = _reach()
    data["assimilation"]["observations"]["level"] = {"observes": "level", "error": 0.1}
    problems = _problems(data)
    assert "not in the state vector" in problems["assimilation.observations.level.observes"]


def test_entrypoints_are_declared_and_checked_in_the_app_folder(tmp_path: Path) -> None:
    data = copy.deepcopy(_reach())
    manifest, _ = check_manifest_data(data)
    assert manifest is not None
    found = {loc: (kind, ep) for loc, kind, ep in declared_entrypoints(manifest)}
    assert found["assimilation.step.entrypoint"] == ("assimilation_step", "river_reach.assimilation:step")
    assert found["assimilation.observations.level.operator"] == ("observation_operator",
                                                                 "river_reach.assimilation:level")
    spec = {"state": ["level"], "step": {"entrypoint": "test_app.missing:step", "dt": "1h"},
            "observations": {"level": {"stream": "readings", "observes": "level", "error": 0.1}}}
    streams = {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}}
    folder = make_app(tmp_path, manifest={"assimilation": spec, "streams": streams})
    _manifest, problems = check_app_dir(folder)
    assert {p.loc: p.msg for p in problems}.get("assimilation.step.entrypoint", "").startswith("module "
                                                                                               "'test_app.missing'")


def test_the_sandbox_check_knows_how_the_engine_calls_each_entrypoint(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from twinengine.app._entrypoints import entrypoint_problem

    (tmp_path / "sigs.py").write_text("def step(state, parameters, forcing, dt):\n    return state\n"
                                      "def two(state, parameters):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert entrypoint_problem("assimilation_step", "sigs:step") is None
    assert entrypoint_problem("observation_operator", "sigs:two") is None
    assert entrypoint_problem("observation_error", "sigs:two") is None
    why = entrypoint_problem("assimilation_step", "sigs:two")
    assert why is not None and "fn(state, parameters, forcing, dt)" in why
