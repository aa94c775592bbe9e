"""CWL out: every reference app's openEO workflow exported as an OGC EO Application Package
(``twin app export-cwl``) is valid to cwltool (from PyPI) and passes ``eoap-validator`` (eoap-package profile)
with 0 failed and 0 needs-review, both from virtual environments of their own; an exported workflow runs under
cwltool against ``twin serve`` and its results come back as a STAC catalog, checked by checksum.

No container runtime is installed here, and the package's tool requires its image (a Python 3): cwltool runs it
through ``twinengine.cwl.stand_in`` (``--user-space-docker-cmd``), which runs the command under bubblewrap with
this machine's Python standing in for the image (the tool needs Python's standard library only).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from helpers import REPO, admin_token, log_tail, need_sandbox, serve_log, serve_settings
from ogc_fixtures import cwl_python, eoap_validator
from twinengine.cli.main import app as cli_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.cwl.stand_in import write_executable

APPS = sorted(p for p in (REPO / "examples" / "apps").iterdir()
              if (p / "twinapp.yaml").is_file() and yaml.safe_load((p / "twinapp.yaml").read_text()).get("workflows"))
LATTICE = REPO / "examples" / "apps" / "lattice-phi4"


def _export(folder: Path, out: Path, *extra: str) -> list[Path]:
    result = CliRunner().invoke(cli_app, ["app", "export-cwl", str(folder), "--out", str(out), *extra],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [Path(line) for line in result.stdout.split()]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("exported")
    return [path for app in APPS for path in _export(app, out)]


def test_every_reference_app_workflow_is_exported(exported: list[Path]) -> None:
    names = {p.name for p in exported}
    expected = {f"{yaml.safe_load((app / 'twinapp.yaml').read_text())['name']}-{wf}.cwl"
                for app in APPS for wf in yaml.safe_load((app / "twinapp.yaml").read_text())["workflows"]}
    assert names == expected and len(names) >= 7
    for path in exported:
        document = yaml.safe_load(path.read_text())
        assert "$schemas" not in document and document["cwlVersion"] == "v1.2"
        ids = [p["id"] for p in document["$graph"]]
        assert "main" not in ids and "&id" not in path.read_text()


@pytest.mark.ci_only  # each package through the tools' own validators (virtualenvs .ci/run makes)
def test_cwltool_validates_every_exported_package(exported: list[Path]) -> None:
    cwltool = cwl_python().parent / "cwltool"
    for path in exported:
        checked = subprocess.run([str(cwltool), "--validate", str(path)], capture_output=True, text=True,
                                 timeout=300)
        assert checked.returncode == 0 and "is valid CWL" in checked.stdout + checked.stderr, checked.stderr[-3000:]
        assert "Warning" not in checked.stderr, checked.stderr[-3000:]


@pytest.mark.ci_only
def test_eoap_validator_passes_every_exported_package(exported: list[Path]) -> None:
    validator = eoap_validator()
    for path in exported:
        checked = subprocess.run([str(validator), "--format", "json", str(path)], capture_output=True, text=True,
                                 timeout=600)
        report = json.loads(checked.stdout)
        counts = {f["status"]: 0 for f in report["findings"]}
        for finding in report["findings"]:
            counts[finding["status"]] += 1
        assert counts.get("failed", 0) == 0 and counts.get("needs-review", 0) == 0, (path.name, [
            f for f in report["findings"] if f["status"] != "passed"])
        assert counts.get("blocked", 0) == 0 and counts["passed"] >= 30, (path.name, counts)
        assert checked.returncode == 0, checked.stderr[-2000:]


@dataclass
class Served:
    url: str
    token: str
    twin: str
    data_dir: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("export-engine") / "data")
    with serve_settings(settings) as url:
        token = admin_token(settings)
        with Client(url, token) as admin:
            admin.publish_app(LATTICE)
            admin.create_twin("lattice-phi4@0.1.0", "phi4-cwl", {"L": 4})
        yield Served(url, token, "phi4-cwl", settings.data_dir)


def test_an_exported_workflow_runs_under_cwltool_against_an_engine(served: Served, tmp_path: Path) -> None:
    need_sandbox()
    (package,) = _export(LATTICE, tmp_path, "--workflow", "reference")
    stand_in = write_executable(tmp_path / "stand-in")
    job = tmp_path / "job.yml"
    job.write_text(yaml.safe_dump({"engine": served.url, "twin": served.twin, "sweeps": 40, "chains": 2,
                                   "seed": 7}))
    out = tmp_path / "out"
    ran = subprocess.run([str(cwl_python().parent / "cwltool"), "--quiet", "--user-space-docker-cmd", str(stand_in),
                          "--preserve-environment", "TWIN_TOKEN", "--outdir", str(out),
                          f"{package}#lattice-phi4-reference", str(job)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "TWIN_TOKEN": served.token})
    engine_log = log_tail(serve_log(served.data_dir, int(served.url.rsplit(":", 1)[1])))
    assert ran.returncode == 0, ran.stderr[-4000:] + "\nthe engine's log:\n" + engine_log
    # the token is no input: neither the output object nor the results name it (cwltool's own INFO log prints a
    # container's environment, so it runs --quiet)
    assert served.token not in ran.stdout + ran.stderr
    results = json.loads(ran.stdout)["results"]
    catalog = Path(results["path"])
    assert json.loads((catalog / "catalog.json").read_text())["type"] == "Catalog"
    (item_path,) = [p for p in catalog.glob("*/*.json") if p.stem == p.parent.name]  # <run>/<run>.json
    item = json.loads(item_path.read_text())
    assert item["properties"]["app"] == "lattice-phi4@0.1.0" and item["properties"]["workflow"] == "reference"
    assert item["properties"]["parameters"] == {"sweeps": 40, "chains": 2, "seed": 7}
    with Client(served.url, served.token) as admin:
        run = admin.workflows.get(item["id"])
    assert run.status == "finished" and run.parameters["sweeps"] == 40
    listed = {a["name"]: a for a in run.assets}
    for name, asset in item["assets"].items():
        kept = item_path.parent / asset["href"].removeprefix("./")
        digest = hashlib.sha256(kept.read_bytes()).hexdigest()
        assert asset["file:checksum"] == "1220" + digest
        if name != "provenance.json":
            assert listed[name]["sha256"] == digest
    assert set(item["assets"]) == set(listed) | {"provenance.json"}
    assert not [p for p in catalog.rglob("*") if p.is_file() and served.token.encode() in p.read_bytes()]


def test_a_package_refuses_a_twin_of_another_app_version(served: Served, tmp_path: Path) -> None:
    need_sandbox()
    (package,) = _export(LATTICE, tmp_path, "--workflow", "reference")
    text = package.read_text().replace("lattice-phi4@0.1.0", "lattice-phi4@9.9.9")
    package.write_text(text)
    stand_in = write_executable(tmp_path / "stand-in")
    job = tmp_path / "job.yml"
    job.write_text(yaml.safe_dump({"engine": served.url, "twin": served.twin}))
    ran = subprocess.run([str(cwl_python().parent / "cwltool"), "--user-space-docker-cmd", str(stand_in),
                          "--preserve-environment", "TWIN_TOKEN", "--outdir", str(tmp_path / "out"),
                          f"{package}#lattice-phi4-reference", str(job)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TWIN_TOKEN": served.token})
    assert ran.returncode != 0
    assert "is of lattice-phi4@0.1.0" in ran.stderr and "lattice-phi4@9.9.9" in ran.stderr
