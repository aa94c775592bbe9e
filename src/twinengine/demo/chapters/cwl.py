"""The CWL chapter: application packages in and out. A developer deploys a CWL application package through OGC
API - Processes; the user executes it on the twin's forecast (its STAC item, staged in as a catalog) and finds its
result through STAC; the twin's forecast workflow, exported as a package (``twin app export-cwl``), runs under
cwltool against this engine on a fork of the twin (the twin's own state is not touched)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import yaml

from twinengine.demo.chapters.twins import _free_name
from twinengine.demo.context import DemoContext

__all__ = ["PEAK_PACKAGE", "packages_in_and_out"]

# The forecast's peak and length from the run's STAC item (a Directory: a catalog, the item, its JSON asset)
PEAK_PACKAGE = """
cwlVersion: v1.2
$graph:
- class: Workflow
  id: forecast-peak
  label: Peak of a level forecast
  doc: Reads a level forecast (a STAC catalog of a run's item) and writes a STAC catalog with its peak.
  inputs:
    forecast: {type: Directory, label: Forecast, doc: STAC catalog of a forecast run's item}
  outputs:
    peak: {type: Directory, outputSource: peak/peak, label: Peak, doc: STAC catalog holding peak.json}
  steps:
    peak:
      run: "#peak-of"
      in: {forecast: forecast}
      out: [peak]
- class: CommandLineTool
  id: peak-of
  requirements:
    InitialWorkDirRequirement:
      listing:
        - entryname: peak.py
          entry: |
            import json, pathlib, sys
            root = pathlib.Path(sys.argv[1])
            data = [p for p in root.rglob("*.json") if p.name not in ("catalog.json",) and p.parent != root
                    and not p.name.startswith(p.parent.name)]
            levels = json.loads(data[0].read_text())
            out = pathlib.Path("peak"); out.mkdir()
            (out / "peak.json").write_text(json.dumps({"peak_m": max(levels), "hours": len(levels)}))
            (out / "catalog.json").write_text(json.dumps({"type": "Catalog", "stac_version": "1.0.0",
                "id": "peak", "description": "peak of a level forecast", "links": []}))
  baseCommand: [python3, peak.py]
  inputs:
    forecast: {type: Directory, inputBinding: {position: 1}}
  outputs:
    peak: {type: Directory, outputBinding: {glob: peak}}
"""


def _cwltool(ctx: DemoContext) -> Path | None:
    """cwltool beside the CWL runner's packages (``cwl_runner_site``), where there is one."""
    site = ctx.runtime.settings.cwl_runner_site
    if site is None:
        return None
    found = Path(site).parents[2] / "bin" / "cwltool"
    return found if found.is_file() else None


def _package_in(ctx: DemoContext) -> dict[str, Any]:
    run_id = ctx.facts["workflow"]["run"]
    headers = {"Authorization": f"Bearer {ctx.tokens['ada']}"}
    with httpx.Client(base_url=ctx.url, timeout=600) as http:
        existing = http.get("/ogcapi/processes/forecast-peak")
        if existing.status_code == 200:  # a demo run again on the same data dir
            http.delete("/ogcapi/processes/forecast-peak", headers=headers).raise_for_status()
        deployed = http.post("/ogcapi/processes", content=PEAK_PACKAGE.encode(),
                             headers={**headers, "Content-Type": "application/cwl+yaml"})
        deployed.raise_for_status()
        item = f"{ctx.url}/stac/collections/workflow-results/items/{run_id}"
        started = time.perf_counter()
        answer = http.post("/ogcapi/processes/forecast-peak/execution",
                           headers={"Authorization": f"Bearer {ctx.tokens['uma']}"},
                           json={"inputs": {"forecast": {"href": item}}, "response": "document"})
        answer.raise_for_status()
        seconds = time.perf_counter() - started
        job = answer.headers["link"].split(">")[0].rpartition("/")[2]
        files = {f["title"]: f["href"] for f in answer.json()["peak"]["files"]}
        peak = json.loads(http.get(files["peak.json"], headers={"Authorization": f"Bearer {ctx.tokens['uma']}"})
                          .content)
    with httpx.Client(base_url=ctx.url, timeout=120) as http:
        search = http.get("/stac/search", params={"ids": job, "collections": "workflow-results"},
                          headers={"Authorization": f"Bearer {ctx.tokens['uma']}"}).json()
    found = next(iter(search.get("features") or []), None)
    assets = sorted((found or {}).get("assets", {}))
    ctx.say(f"ada deployed the CWL package forecast-peak through OGC API - Processes; uma executed it on the "
            f"forecast run {run_id} (its STAC item staged in as a catalog) in {seconds:.1f} s: peak "
            f"{peak['peak_m']:.2f} m over {peak['hours']} h; job {job} found through STAC "
            f"(/stac/search?ids={job}) with {len(assets)} assets")
    return {"process": "forecast-peak", "job": job, "input": item, "peak": peak, "stac_assets": assets,
            "seconds": round(seconds, 2)}


def _package_out(ctx: DemoContext, cwltool: Path) -> dict[str, Any]:
    from twinengine.cwl.export import export_app
    from twinengine.cwl.stand_in import write_executable

    uma, name = ctx.client("uma"), ctx.facts["twin_name"]
    fork = uma.fork_twin(name, _free_name(uma, f"{name}-cwl"), description="the exported forecast's run")
    folder = Path(tempfile.mkdtemp(prefix="cwl-", dir=ctx.runtime.data_dir))
    (file_name, document), = export_app(ctx.app_folder, workflow="forecast").items()
    package = folder / file_name
    package.write_text(yaml.safe_dump(document, sort_keys=False, width=120))
    (folder / "job.yml").write_text(yaml.safe_dump({"engine": ctx.url, "twin": fork.name,
                                                    "collection": "rain-forecast"}))
    started = time.perf_counter()
    ran = subprocess.run([str(cwltool), "--quiet", "--user-space-docker-cmd", str(write_executable(folder / "run")),
                          "--preserve-environment", "TWIN_TOKEN", "--outdir", str(folder / "out"),
                          f"{package}#{document['$graph'][0]['id']}", str(folder / "job.yml")],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TWIN_TOKEN": ctx.tokens["uma"]})
    seconds = time.perf_counter() - started
    if ran.returncode != 0:
        raise RuntimeError(f"cwltool failed on the exported forecast: {ran.stderr[-2000:]}")
    catalog = Path(json.loads(ran.stdout)["results"]["path"])
    item = next(p for p in catalog.glob("*/*.json") if p.stem == p.parent.name)  # <run>/<run>.json
    run_id = json.loads(item.read_text())["id"]
    ctx.say(f"the forecast workflow exported as a CWL package ({file_name}) ran under cwltool against this engine "
            f"on the fork {fork.name} in {seconds:.1f} s: run {run_id}, its results staged out as a STAC catalog "
            f"({len(list(catalog.rglob('*')))} entries, checked by SHA-256)")
    return {"package": file_name, "fork": fork.name, "run": run_id, "catalog": str(catalog / "catalog.json"),
            "seconds": round(seconds, 2)}


def packages_in_and_out(ctx: DemoContext) -> None:
    cwltool = _cwltool(ctx)
    if cwltool is None or "workflow" not in ctx.facts:
        ctx.say("CWL chapter skipped: no CWL runner is configured (cwl_runner_site, a virtual environment's "
                "site-packages with cwltool)")
        ctx.summary.append(("CWL", "skipped: set cwl_runner_site (docs/processes.md)"))
        return
    started = time.perf_counter()
    facts: dict[str, Any] = {"in": _package_in(ctx), "out": _package_out(ctx, cwltool)}
    facts["seconds"] = round(time.perf_counter() - started, 2)
    ctx.facts["cwl"] = facts
    ctx.summary.append(("CWL in", f"forecast-peak (OGC API - Processes) on run {facts['in']['input'].rsplit('/', 1)[1]}"
                                  f": peak {facts['in']['peak']['peak_m']:.2f} m; job {facts['in']['job']} in STAC"))
    ctx.summary.append(("CWL out", f"{facts['out']['package']} under cwltool: run {facts['out']['run']} on "
                                   f"{facts['out']['fork']}"))
