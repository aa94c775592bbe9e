"""climate-extremes, the climate reference app: ``twin app test`` passes it (its own tests, publishing with xclim
installed into the app's environment, every workflow), and its science check runs through the engine: the
demo chapter detects the planted cyclones (F1 >= 0.9, mean centre error below two cells) and runs three warming
pathways as ensembles of five members, whose recovered TX90p and Rx1day trends hold the planted ones inside the
members' 99 % confidence interval. The app's environment is built once for the module (TWIN_ENVS_DIR)."""

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

pytestmark = pytest.mark.ci_only  # builds the app's environment from the package index (xclim; minutes)

APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "climate-extremes"
XCLIM = "xclim==0.62.0"


@pytest.fixture(scope="module", autouse=True)
def shared_envs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One app environment for every engine of this module: xclim is resolved and installed once."""
    need_sandbox()
    probe = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "--ignore-installed", XCLIM],
                           capture_output=True, text=True, timeout=300, check=False)
    if probe.returncode != 0:
        unavailable("package-index", f"pip cannot find {XCLIM}: {(probe.stderr or probe.stdout).strip()[-300:]}")
    folder = tmp_path_factory.mktemp("envs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TWIN_ENVS_DIR", str(folder))
        yield folder


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first test of the module builds the app's environment (xclim) from the index
def test_twin_app_test_passes_the_app() -> None:
    result = CliRunner().invoke(cli_app, ["--json", "app", "test", str(APP)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = {i["item"]: i for i in json.loads(result.output)["items"]}
    for item in ("manifest", "tests", "publish", "process trends", "workflow indices", "workflow storms",
                 "workflow weather"):
        assert found[item]["ok"] and not found[item]["skipped"], found.get(item)


@pytest.mark.slow
@pytest.mark.timeout(900)  # 15 members of 30 years: 40 s on a loaded 2-core machine, minutes under more load
def test_recovered_trends_hold_the_planted_ones_and_the_cyclones_are_found(tmp_path: Path) -> None:
    from twinengine.demo.context import DemoOptions
    from twinengine.demo.runner import run_demo

    ctx = run_demo(DemoOptions(app="climate-extremes", data_dir=tmp_path / "demo", climate_members=5,
                               climate_years=20))
    facts = ctx.facts["climate"]
    scores = facts["storms"]["scores"]
    assert scores["planted"] > 150 and scores["f1"] >= 0.9 and scores["centre_error_cells"] < 2.0, scores
    assert facts["storms"]["centres"] == scores["detected"]  # every centre is a location of the point collection
    rows = {r["pathway"]: r for r in facts["pathways"]}
    assert list(rows) == ["low", "medium", "high"]
    for name, row in rows.items():
        for index in ("tx90p_trend", "rx1day_trend"):
            got = row[index]
            assert len(got["members"]) == 5 and len(set(got["members"])) == 5  # five different members
            assert got["inside"], (name, index, got)  # planted inside the members' 99 % interval
            assert got["ci99"][1] - got["ci99"][0] < 4 * abs(rows["high"][index]["planted"])  # a useful interval
        assert 0 <= row["probability"] <= 1
    # warming the region more gives more hot days, wetter extremes, more heat waves and more fire danger
    for index in ("tx90p_trend", "rx1day_trend", "heat_wave_frequency_trend", "fwi_trend"):
        assert rows["low"][index]["mean"] < rows["medium"][index]["mean"] < rows["high"][index]["mean"], index
    assert rows["high"]["tx90p_trend"]["ci99"][0] > 0  # the high pathway's trend is significant
    twin = facts["twin"]  # its collections are its datasets in the lake, never files every role reads
    assert facts["collections"] == [f"climate-extremes.{twin}-{n}" for n in ("stations", "storms", "weather")]
    folder = tmp_path / "demo" / "collections"
    assert not folder.exists() or not any(p.name.startswith("climate-extremes") for p in folder.iterdir())
