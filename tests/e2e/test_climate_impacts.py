"""climate-impacts, the drought and fire-danger reference app: ``twin app test`` passes it (its own tests with
climate-indices in the app's environment: the Fire Weather Index system within 0.01 of the cffdrs reference
table, SPI within 0.02 of climate-indices at 1, 3, 6 and 12 months, the generator's truth; publishing; every
workflow), and its science check runs through the engine: the demo chapter runs four rain scenarios as
ensembles of four members, whose SPI-1 drought frequency holds its closed form inside the members' 99 %
interval and rises with the scenario, whose planted droughts are found within a month, 0.05 of the grid and
0.2 of SPI, and whose compound drought and fire-danger days rise with the scenario. The app's environment is
built once for the module (TWIN_ENVS_DIR)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import need_sandbox, unavailable
from twinengine.cli.main import app as cli_app

pytestmark = pytest.mark.ci_only  # builds the app's environment from the package index (climate-indices)

APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "climate-impacts"
CLIMATE_INDICES = "climate-indices==3.1.0"
MEMBERS = 4


@pytest.fixture(scope="module", autouse=True)
def shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One app environment for every engine of this module: climate-indices is resolved and installed once."""
    need_sandbox()
    probe = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "--ignore-installed", CLIMATE_INDICES],
                           capture_output=True, text=True, timeout=300, check=False)
    if probe.returncode != 0:
        unavailable("package-index", f"pip cannot find {CLIMATE_INDICES}: "
                                     f"{(probe.stderr or probe.stdout).strip()[-300:]}")
    folder = tmp_path_factory.mktemp("envs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TWIN_ENVS_DIR", str(folder))
        yield folder


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first test of the module builds the app's environment from the index
def test_twin_app_test_passes_the_app() -> None:
    result = CliRunner().invoke(cli_app, ["--json", "app", "test", str(APP)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = {i["item"]: i for i in json.loads(result.output)["items"]}
    for item in ("manifest", "tests", "publish", "process impacts_state", "process fire_weather_index",
                 "workflow impacts", "workflow maps", "workflow weather", "workflow fwi_check"):
        assert found[item]["ok"] and not found[item]["skipped"], found.get(item)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 16 members of 50 years: about two minutes on a loaded 2-core machine
def test_drought_frequency_planted_droughts_and_compound_days_through_the_engine(tmp_path: Path) -> None:
    from twinengine.demo.context import DemoOptions
    from twinengine.demo.runner import run_demo

    ctx = run_demo(DemoOptions(app="climate-impacts", data_dir=tmp_path / "demo", impacts_members=MEMBERS))
    facts = ctx.facts["impacts"]
    assert facts["fwi"]["max_abs_difference"] < 0.01  # the FWI system against the cffdrs table, in the sandbox
    rows = {r["scenario"]: r for r in facts["scenarios"]}
    assert list(rows) == ["reference", "low", "medium", "high"]
    assert [r["rain_factor"] for r in rows.values()] == [1.0, 0.9, 0.8, 0.7]
    for name, row in rows.items():
        assert row["members"] == len(row["member_states"]) == MEMBERS
        assert len({m["spi1_drought_frequency"] for m in row["member_states"]}) == MEMBERS  # four different members
        assert row["inside"], (name, row["frequency"], row["expected_interval"])  # closed form in the 99 % interval
        assert abs(row["frequency"] - row["expected_given_fit"]) < 0.01, name     # and close to it in any case
        # the closed form of the true distribution (shape 2, no dry months)
        assert abs(row["closed_form_natural"] - {1.0: 0.1587, 0.9: 0.1866, 0.8: 0.2223, 0.7: 0.2687}[
            row["rain_factor"]]) < 5e-4
        assert row["planted_found"] == row["planted"] == 2 * MEMBERS, name
        assert 0 <= row["probability"] <= 1
    assert rows["reference"]["planted_within_bounds"], rows["reference"]   # duration ±1, extent ±0.05, SPI ±0.2
    # less rain and more warmth: more drought months, more fire danger, more compound days
    for key in ("frequency", "spi3_drought_frequency", "spei3_drought_frequency", "fwi_high_days",
                "compound_days"):
        values = [rows[n][key] for n in rows]
        assert values == sorted(values) and values[0] < values[-1], (key, values)
    maps = facts["maps"]  # a dataset of the twin, served by EDR, never a file every role reads
    assert maps["collection"] == f"climate-impacts.{facts['twin']}-maps" and maps["edr_months"] == 20 * 12
    folder = tmp_path / "demo" / "collections"
    assert not folder.exists() or not any(p.name.startswith("climate-impacts") for p in folder.iterdir())
    answer = facts["answer"]  # the portal view's sentence, from the twin's own figures (member 0, reference)
    assert answer.startswith(f"With rain x 1 and +0 K, {facts['twin']} is in drought (SPI-3 at most -1)"), answer
    assert "of the cffdrs reference" in answer and "closed form says" in answer, answer
