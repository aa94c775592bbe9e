"""CWL application packages through OGC API - Processes: deployed (Part 2), described, executed in a sandboxed
worker by cwltool (never in the engine), their output STAC catalog kept as the run's results; replaced and
undeployed; called from an openEO process graph (``run_ogc_application_package``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO, Engine, engine_on
from ogc_fixtures import cwl_site
from twinengine.config import Settings

PACKAGE = """
cwlVersion: v1.2
$graph:
- class: Workflow
  id: main
  label: Greeting catalog
  doc: Writes a STAC catalog holding a greeting.
  inputs:
    message: {type: string, label: The greeting}
  outputs:
    catalog: {type: Directory, outputSource: write/catalog}
  steps:
    write:
      run: "#write"
      in: {message: message}
      out: [catalog]
- class: CommandLineTool
  id: write
  hints:
    DockerRequirement: {dockerPull: "docker.io/library/alpine:3"}
  requirements:
    InitialWorkDirRequirement:
      listing:
        - entryname: run.sh
          entry: |
            mkdir -p out/greeting
            printf '%s' "$1" > out/greeting/greeting.txt
            printf '{"type": "Catalog", "stac_version": "1.0.0", "id": "greeting",' > out/catalog.json
            printf ' "description": "a greeting", "links": []}' >> out/catalog.json
  baseCommand: [sh, run.sh]
  inputs:
    message: {type: string, inputBinding: {position: 1}}
  outputs:
    catalog: {type: Directory, outputBinding: {glob: out}}
"""

PEEK = """
cwlVersion: v1.2
class: CommandLineTool
id: peek
baseCommand: [sh, -c]
arguments: ["ls -a $(inputs.where) > seen.txt 2>&1 || echo refused > seen.txt"]
inputs:
  where: string
outputs:
  seen: {type: File, outputBinding: {glob: seen.txt}}
"""


@pytest.fixture(scope="module")
def cwl_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    site = cwl_site()
    folder = tmp_path_factory.mktemp("cwl")
    with engine_on(Settings(data_dir=folder / "data", warm_routes=False, cwl_runner_site=site)) as engine:
        yield engine


def _deploy(engine: Engine, text: str, *, expect: int = 201) -> dict[str, object]:
    response = engine.http.post("/ogcapi/processes", content=text.encode(),
                                headers={**engine.headers(engine.admin_token), "Content-Type": "application/cwl+yaml"})
    assert response.status_code == expect, response.text
    return dict(response.json())


def test_a_package_is_deployed_described_executed_and_its_catalog_kept(cwl_engine: Engine) -> None:
    engine, headers = cwl_engine, cwl_engine.headers(cwl_engine.admin_token)
    summary = _deploy(engine, PACKAGE)
    assert summary["id"] == "main" and summary["title"] == "Greeting catalog"
    described = engine.http.get("/ogcapi/processes/main").json()
    assert described["inputs"]["message"]["schema"] == {"type": "string"}
    assert described["outputs"]["catalog"]["schema"] == {"type": "string", "format": "uri"}
    package = engine.http.get("/ogcapi/processes/main/package", headers=headers)
    assert package.status_code == 200 and package.json() == yaml.safe_load(PACKAGE)
    answer = engine.http.post("/ogcapi/processes/main/execution", headers=headers,
                              json={"inputs": {"message": "hello from the twin"}, "response": "document"})
    assert answer.status_code == 200, answer.text
    catalog = answer.json()["catalog"]
    files = {f["title"]: f["href"] for f in catalog["files"]}
    assert set(files) == {"catalog.json", "greeting/greeting.txt"}
    assert json.loads(engine.http.get(files["catalog.json"], headers=headers).content)["type"] == "Catalog"
    assert engine.http.get(files["greeting/greeting.txt"], headers=headers).text == "hello from the twin"
    job = answer.headers["link"].split(">")[0].lstrip("<")
    status = engine.http.get(job, headers=headers).json()
    assert status["status"] == "successful" and status["processID"] == "main"
    provenance = engine.http.get(f"/api/v1/runs/{status['jobID']}/provenance", headers=headers).json()
    assert any("package:main" in key for key in provenance.get("entity", {})), provenance.get("entity")


def test_a_package_that_needs_a_container_is_refused_naming_the_requirement(cwl_engine: Engine) -> None:
    needs = PACKAGE.replace("  hints:\n    DockerRequirement", "  requirements:\n    DockerRequirement", 1)
    needs = needs.replace("  requirements:\n    InitialWorkDirRequirement", "    InitialWorkDirRequirement", 1)
    refused = _deploy(cwl_engine, needs.replace("id: main", "id: other"), expect=400)
    assert "$graph[1].requirements.DockerRequirement" in str(refused["detail"])


def test_a_package_is_replaced_and_undeployed(cwl_engine: Engine) -> None:
    engine, headers = cwl_engine, cwl_engine.headers(cwl_engine.admin_token)
    text = PACKAGE.replace("id: main", "id: greeter").replace("#write", "#writer").replace("id: write\n",
                                                                                           "id: writer\n")
    _deploy(engine, text)
    assert _deploy(engine, text, expect=409)["type"].endswith("duplicated-process")
    replaced = engine.http.put("/ogcapi/processes/greeter", content=text.replace("Greeting catalog", "Greeter 2"),
                               headers={**headers, "Content-Type": "application/cwl+yaml"})
    assert replaced.status_code == 204, replaced.text
    assert engine.http.get("/ogcapi/processes/greeter").json()["title"] == "Greeter 2"
    assert engine.http.delete("/ogcapi/processes/greeter", headers=headers).status_code == 204
    assert engine.http.get("/ogcapi/processes/greeter").json()["type"].endswith("no-such-process")


def test_an_openeo_graph_calls_a_package(cwl_engine: Engine) -> None:
    engine, headers = cwl_engine, cwl_engine.headers(cwl_engine.admin_token)
    inline = yaml.safe_load(PEEK)
    graph = {"process": {"process_graph": {"run": {"process_id": "run_ogc_application_package", "arguments": {
        "package": inline, "inputs": {"where": "/twin/app"}}, "result": True}}}}
    answer = engine.http.post("/openeo/1.2/result", json=graph, headers=headers)
    assert answer.status_code == 200, answer.text
    assert "package.cwl" in answer.text  # the package's output file: what its command saw of its own folder


def test_a_package_sees_nothing_of_the_engine(cwl_engine: Engine, tmp_path: Path) -> None:
    """The package's command runs in the sandbox: the engine's data dir is not there to list."""
    from helpers import need_sandbox

    need_sandbox()
    engine, headers = cwl_engine, cwl_engine.headers(cwl_engine.admin_token)
    data_dir = str(engine.runtime.settings.data_dir)
    graph = {"process": {"process_graph": {"run": {"process_id": "run_ogc_application_package", "arguments": {
        "package": yaml.safe_load(PEEK), "inputs": {"where": data_dir}}, "result": True}}}}
    answer = engine.http.post("/openeo/1.2/jobs", json=graph, headers=headers)
    assert answer.status_code == 201
    run = answer.headers["openeo-identifier"]
    assert engine.http.post(f"/openeo/1.2/jobs/{run}/results", headers=headers).status_code == 202
    from streams_fixtures import eventually

    eventually(lambda: engine.http.get(f"/openeo/1.2/jobs/{run}", headers=headers).json()["status"] == "finished")
    assets = engine.http.get(f"/openeo/1.2/jobs/{run}/results", headers=headers).json()["assets"]
    seen = next(a for name, a in assets.items() if name.startswith("seen"))
    listing = engine.http.get(seen["href"], headers=headers).text
    assert "twin.db" not in listing and "keys" not in listing, listing


def _renamed(process_id: str) -> str:
    return PACKAGE.replace("id: main", f"id: {process_id}").replace("#write", f"#{process_id}-write").replace(
        "id: write\n", f"id: {process_id}-write\n")


def test_a_package_is_deployed_by_reference_only_to_a_lake_file_of_this_engine(cwl_engine: Engine,
                                                                                tmp_path: Path) -> None:
    engine, headers = cwl_engine, cwl_engine.headers(cwl_engine.admin_token)
    root = engine.sdk(engine.admin_token)
    root.lake.add_endpoint("packages", "file", str(tmp_path / "lake"))
    source = tmp_path / "from-lake.cwl"
    source.write_text(_renamed("from-lake"))
    root.lake.upload(source, "pkgs:from-lake.cwl", endpoint="packages")
    ogcapppkg = {**headers, "Content-Type": "application/ogcapppkg+json"}

    def deploy(href: str) -> Any:
        return engine.http.post("/ogcapi/processes", headers=ogcapppkg,
                                json={"processDescription": {"id": "from-lake"}, "executionUnit": {"href": href}})

    for elsewhere in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:6379/",
                      "http://other.example/api/v1/lake/dids/pkgs:from-lake.cwl/content", "file:///etc/passwd",
                      "http://testserver/api/v1/runs"):
        refused = deploy(elsewhere)
        assert refused.status_code == 400, (elsewhere, refused.text)
        assert "executionUnit.href" in refused.json()["detail"]
    assert engine.http.get("/ogcapi/processes/from-lake").status_code == 404
    deployed = deploy("http://testserver/api/v1/lake/dids/pkgs:from-lake.cwl/content")
    assert deployed.status_code == 201, deployed.text
    package = engine.http.get("/ogcapi/processes/from-lake/package", headers=headers).json()
    assert package == yaml.safe_load(source.read_text())
    stranger = engine.headers(engine.token("nobody", "developer"))
    hidden = engine.http.post("/ogcapi/processes", headers={**stranger, "Content-Type": "application/ogcapppkg+json"},
                              json={"executionUnit": {"href": "/api/v1/lake/dids/pkgs:from-lake.cwl/content"}})
    assert hidden.status_code in (403, 404), hidden.text  # read as the caller: the lake's grants hold


def test_a_process_deployed_with_an_app_is_pinned_to_its_version(cwl_engine: Engine) -> None:
    engine, headers = cwl_engine, cwl_engine.headers(cwl_engine.admin_token)
    engine.sdk(engine.admin_token).publish_app(REPO / "examples" / "apps" / "lattice-phi4")
    cwl = {**headers, "Content-Type": "application/cwl+yaml"}
    assert engine.http.post("/ogcapi/processes?app=no-such-app", content=_renamed("pinned").encode(),
                            headers=cwl).status_code == 404
    made = engine.http.post("/ogcapi/processes?app=lattice-phi4", content=_renamed("pinned").encode(), headers=cwl)
    assert made.status_code == 201, made.text

    def pins() -> dict[str, Any]:
        described = engine.http.get("/ogcapi/processes/pinned").json()
        return {m["role"]: m["value"] for m in described.get("metadata", [])}

    first = pins()
    assert first["app"] == "lattice-phi4@0.1.0" and len(first["app-sha256"]) == 64
    replaced = engine.http.put("/ogcapi/processes/pinned", headers=cwl,
                               content=_renamed("pinned").replace("Greeting catalog", "Pinned 2").encode())
    assert replaced.status_code == 204, replaced.text
    assert pins() == first  # a replacement keeps the pin of what it replaces
    answer = engine.http.post("/ogcapi/processes/pinned/execution", headers=headers,
                              json={"inputs": {"message": "pinned"}, "response": "document"})
    assert answer.status_code == 200, answer.text
    job = answer.headers["link"].split(">")[0].lstrip("<").rpartition("/")[2]
    assert engine.http.get(f"/api/v1/runs/{job}", headers=headers).json()["app"] == "lattice-phi4@0.1.0"


def test_a_package_takes_a_nested_process_output_as_its_input(cwl_engine: Engine) -> None:
    """Part 3 over Part 2: echo's output nested as the deployed package's ``message``, one run."""
    engine, headers = cwl_engine, cwl_engine.headers(cwl_engine.admin_token)
    _deploy(engine, _renamed("nested"))
    nested = {"process": "http://testserver/ogcapi/processes/echo", "inputs": {"echoInput": "handed on"}}
    answer = engine.http.post("/ogcapi/processes/nested/execution", headers=headers,
                              json={"inputs": {"message": nested}, "response": "document"})
    assert answer.status_code == 200, answer.text
    files = {f["title"]: f["href"] for f in answer.json()["catalog"]["files"]}
    assert engine.http.get(files["greeting/greeting.txt"], headers=headers).text == "handed on"


def test_a_package_s_own_job_control_options_decide_how_its_jobs_run(cwl_engine: Engine) -> None:
    """An application package's ``processDescription.jobControlOptions`` narrow how its jobs run (OGC API -
    Processes 1.0's execution mode): a process that runs only as a job runs as one when no preference is sent,
    one that runs only synchronously answers at once whatever the preference, and a job whose process does not
    list ``dismiss`` is not dismissed. Options that are none of the three, or name no way to run, are refused
    naming their place."""
    engine, headers = cwl_engine, cwl_engine.headers(cwl_engine.admin_token)
    ogcapppkg = {**headers, "Content-Type": "application/ogcapppkg+json"}

    def deploy(process_id: str, options: Any) -> Any:
        return engine.http.post("/ogcapi/processes", headers=ogcapppkg, json={
            "processDescription": {"id": process_id, "jobControlOptions": options},
            "executionUnit": {"value": yaml.safe_load(_renamed(process_id))}})

    assert deploy("only-async", ["async-execute"]).status_code == 201
    assert engine.http.get("/ogcapi/processes/only-async").json()["jobControlOptions"] == ["async-execute"]
    started = engine.http.post("/ogcapi/processes/only-async/execution", headers=headers,
                               json={"inputs": {"message": "later"}})
    assert started.status_code == 201, started.text  # no preference: a job, as the process runs only so
    assert "preference-applied" not in started.headers and started.headers["location"].endswith(
        started.json()["jobID"])
    job = started.headers["location"]
    refused = engine.http.delete(job, headers=headers)
    assert refused.status_code == 409 and "dismiss" in refused.text
    assert engine.http.get(job, headers=headers).json()["status"] in ("accepted", "running", "successful")

    assert deploy("only-sync", ["sync-execute", "dismiss"]).status_code == 201
    answered = engine.http.post("/ogcapi/processes/only-sync/execution",
                                headers={**headers, "Prefer": "respond-async"},
                                json={"inputs": {"message": "now"}, "response": "document"})
    assert answered.status_code == 200, answered.text  # asked for a job, run at once: the process runs only so
    assert "preference-applied" not in answered.headers and "catalog" in answered.json()
    dismissed = engine.http.delete(answered.headers["link"].split(">")[0].lstrip("<"), headers=headers)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"

    for options, place in ((["fast-execute"], "processDescription.jobControlOptions[0]"),
                           (["dismiss"], "processDescription.jobControlOptions"),
                           ("sync-execute", "processDescription.jobControlOptions")):
        bad = deploy("bad-options", options)
        assert bad.status_code == 400 and place in bad.text, (options, bad.text)
    assert engine.http.get("/ogcapi/processes/bad-options").status_code == 404
