"""The openEO process ``run_ogc_application_package``: a process graph calls a CWL application package (as
interTwin proposed for openEO), which runs through cwltool in a sandboxed worker within the run.

``package`` names a deployed process (its id, or the URL of its ``/package``) or is a CWL document itself;
``inputs`` are the package's inputs by id (File and Directory inputs name the engine's data, see ``staging``).
The result is the package's outputs by id, files kept as the run's assets.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from twinengine.cwl.package import Package, parse_package
from twinengine.cwl.staging import keep_outputs, stage_inputs
from twinengine.errors import ProcessFailed, ProcessParameterInvalid, ValidationFailed

__all__ = ["PACKAGE_SPEC", "run_ogc_application_package"]

PACKAGE_SPEC: dict[str, Any] = {
    "id": "run_ogc_application_package",
    "summary": "Run an OGC EO Application Package (CWL)",
    "description": "Runs a CWL application package through cwltool in a sandboxed worker: `package` is the id of "
                   "a process deployed through OGC API - Processes (or the URL of its `/package`), or a CWL "
                   "document. File and Directory inputs are URLs of this engine's data (a STAC item, a lake file, a "
                   "run's result asset); the package's output files are kept as the run's results.",
    "categories": ["cwl", "ogc"],
    "experimental": True,
    "parameters": [
        {"name": "package", "description": "A deployed process's id or package URL, or a CWL document.",
         "schema": [{"type": "string", "minLength": 1}, {"type": "object"}]},
        {"name": "inputs", "description": "The package's inputs by id.", "optional": True, "default": {},
         "schema": {"type": "object"}},
    ],
    "returns": {"description": "The package's outputs by id (files as references to the run's assets).",
                "schema": {"type": "object"}},
}


def run_ogc_application_package(package: Any, inputs: Any = None) -> dict[str, Any]:
    from twinengine.cwl.runner import CwlFailed, CwlRunner, RunnerUnavailable
    from twinengine.workflows.context import current
    from twinengine.workflows.evaluate import Canceled

    ctx = current()
    runner = ctx.services.get("cwl")
    if not isinstance(runner, CwlRunner):
        raise ProcessFailed("run_ogc_application_package: this engine has no CWL runner")
    parsed, reference = _package(package, ctx)
    given = dict(inputs or {})
    unknown = sorted(set(given) - {i.id for i in parsed.inputs})
    if unknown:
        raise ProcessParameterInvalid(f"inputs.{unknown[0]}: the package has no such input")
    ctx.inputs.append({"collection": f"package:{reference}", "version": parsed.sha256, "node": ctx.node})
    work = Path(tempfile.mkdtemp(prefix="twin-cwl-"))
    try:
        job = stage_inputs(parsed, given, work / "inputs", ctx)
        (work / "package.cwl").write_text(json.dumps(parsed.document))
        tool = "package.cwl" + (f"#{parsed.fragment}" if parsed.fragment else "")
        try:
            outcome = runner.run(work, tool, job, outdir=work / "out", interrupt=ctx.interrupt)
        except CwlFailed as exc:
            if ctx.interrupt.fired:
                raise Canceled() from None
            raise ProcessFailed(f"run_ogc_application_package: {exc}") from None
        except RunnerUnavailable as exc:
            raise ProcessFailed(f"run_ogc_application_package: {exc}") from None
        for line in outcome.log.splitlines()[-40:]:
            if line.strip():
                ctx.log("info", f"cwltool: {line[:500]}")
        if outcome.code != 0:
            why = "it needs a requirement this engine does not support" if outcome.code == 33 else "it failed"
            raise ProcessFailed(f"run_ogc_application_package: the package {reference} {why} (cwltool exit "
                                f"{outcome.code}): {_last_error(outcome.log)}")
        if not isinstance(outcome.output, dict):
            raise ProcessFailed("run_ogc_application_package: cwltool gave no output object")
        return keep_outputs(outcome.output, work / "out", ctx)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _package(package: Any, ctx: Any) -> tuple[Package, str]:
    if isinstance(package, dict):
        try:
            parsed = parse_package(package, where="package")
        except ValidationFailed as exc:
            raise ProcessParameterInvalid(exc.message) from None
        return parsed, f"inline:{parsed.sha256[:12]}"
    if not isinstance(package, str) or not package:
        raise ProcessParameterInvalid("package: a deployed process's id or a CWL document is required")
    process_id = package.rstrip("/").removesuffix("/package").rpartition("/")[2]
    from twinengine.processes.models import DeployedProcess

    if ctx.db is None:
        raise ProcessParameterInvalid("package: this run has no store to read deployed processes from")
    with ctx.db.session(readonly=True) as session:
        row = session.get(DeployedProcess, process_id)
        document = dict(row.package) if row is not None else None
    if document is None:
        raise ProcessParameterInvalid(f"package: no deployed process {process_id!r}")
    return parse_package(document), process_id


def _last_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    wanted = [line for line in lines if line.startswith(("ERROR", "WARNING")) or "Error" in line] or lines
    return " | ".join(wanted[-4:])[-1200:]
