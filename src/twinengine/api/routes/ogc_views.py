"""How OGC API - Processes shows a run: its status document (``statusInfo``) and its results, as a document or
raw (one output as itself, several as ``multipart/related``), files by reference to the run's assets."""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse

from twinengine.processes.models import ProcessJob
from twinengine.runtime import Runtime
from twinengine.workflows.models import WorkflowRun

__all__ = ["BASE", "MONITOR", "RESULTS", "base_url", "job_url", "link", "output_values", "results_response",
           "status_info"]

BASE = "/ogcapi"
MONITOR = "monitor"
RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
_STATUS = {"created": "accepted", "queued": "accepted", "running": "running", "finished": "successful",
           "error": "failed", "canceled": "dismissed"}


def _root(request: Request) -> str:
    """The engine's URL, worked out once per request (a job list links each of up to 1000 jobs)."""
    root: str | None = getattr(request.state, "ogc_root", None)
    if root is None:
        root = request.state.ogc_root = str(request.base_url).rstrip("/")
    return root


def base_url(request: Request) -> str:
    return _root(request) + BASE


def job_url(request: Request, run_id: str) -> str:
    return f"{base_url(request)}/jobs/{run_id}"


def link(href: str, rel: str, media_type: str | None = None, title: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"href": href, "rel": rel}
    if media_type:
        found["type"] = media_type
    if title:
        found["title"] = title
    return found


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def status_info(request: Request, run: WorkflowRun, job: ProcessJob | str | None) -> dict[str, Any]:
    """The run as an OGC job (``statusInfo.yaml``); ``job``: its OGC request or the id of the process it executes
    (None: a run started otherwise). Links: the job, its PROV document, its run crate, and its results."""
    status = _STATUS.get(str(run.status), "failed")
    info: dict[str, Any] = {"type": "process", "jobID": run.id, "status": status}
    process_id = job if isinstance(job, str) or job is None else job.process_id
    if process_id is not None:
        info["processID"] = process_id
    message = {"accepted": "queued", "running": "running", "successful": "finished",
               "dismissed": "dismissed"}.get(status)
    if status == "failed" and run.error:
        message = str(run.error.get("message", "failed"))[:1000]
    if message:
        info["message"] = message
    for key, value in (("created", run.created_at), ("started", run.started_at), ("finished", run.finished_at),
                       ("updated", run.updated_at)):
        if value is not None:
            info[key] = _iso(value)
    info["progress"] = max(0, min(100, int(run.progress or 0)))
    url = job_url(request, run.id)
    runs = f"{_root(request)}/api/v1/runs/{run.id}"
    info["links"] = [link(url, "self", "application/json", "this job"),
                     link(f"{runs}/provenance", "provenance", "application/json", "the run's W3C PROV document"),
                     link(f"{runs}/crate", "describedby", "application/zip",
                          "the run's Workflow Run RO-Crate (Provenance Run Crate)")]
    if status == "successful":
        info["links"].append(link(url + "/results", RESULTS, "application/json", "results"))
    return info


def output_values(runtime: Runtime, run: WorkflowRun) -> dict[str, Any]:
    """The run's outputs by id (its JSON value, read from its kept ``result.json`` when it did not fit its row)."""
    value = run.value
    if value is None:
        kept = next((a for a in run.assets if a.get("format") == "JSON"), None)
        if kept is not None:
            value = json.loads(runtime.workflows.results.path(run.id, kept["name"]).read_text())
    return value if isinstance(value, dict) else {"result": value}


def _asset_url(request: Request, run: WorkflowRun, name: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/openeo/1.2/jobs/{run.id}/results/assets/{name}"


def _document_entry(request: Request, run: WorkflowRun, output: str, value: Any, mode: str) -> Any:
    """One output in a results document: by value, or a link (files are always links to the run's assets)."""
    if isinstance(value, dict) and "asset" in value:
        return {"href": _asset_url(request, run, str(value["asset"])), "type": value.get("type"),
                **({"title": value["path"]} if "path" in value else {})}
    if isinstance(value, dict) and "files" in value:  # a Directory: its catalog, and each of its files
        files = [{"href": _asset_url(request, run, str(f["asset"])), "type": f.get("type"), "title": f.get("path")}
                 for f in value["files"]]
        catalog = next((f for f in files if str(f.get("title", "")).endswith("catalog.json")), None)
        return {"href": (catalog or files[0])["href"], "type": "application/json", "files": files} if files \
            else {"value": [], "mediaType": "application/json"}
    if mode == "reference":
        return {"href": f"{job_url(request, run.id)}/results/{output}", "type": "application/json"}
    return value


def results_response(request: Request, runtime: Runtime, run: WorkflowRun, job: ProcessJob | None) -> Response:
    """The results of a finished run, as its execution asked (``response``: document or raw)."""
    values = output_values(runtime, run)
    wanted: dict[str, Any] = (job.request.get("outputs") if job is not None else None) or {k: {} for k in values}
    response = job.request.get("response", "document") if job is not None else "document"
    chosen = {name: values.get(name) for name in wanted if name in values}
    modes = {name: (spec or {}).get("transmissionMode", "value") for name, spec in wanted.items()}
    if response == "document" or not chosen:
        return JSONResponse({name: _document_entry(request, run, name, v, modes.get(name, "value"))
                             for name, v in chosen.items()})
    if len(chosen) == 1:
        name, value = next(iter(chosen.items()))
        return raw_output(request, runtime, run, name, value, modes.get(name, "value"))
    return _multipart(request, run, chosen, modes)


def raw_output(request: Request, runtime: Runtime, run: WorkflowRun, name: str, value: Any,
               mode: str = "value") -> Response:
    """One output as itself: a file's bytes, a string as text, anything else as JSON; by reference, a 204 with
    a ``Link`` to it."""
    entry = _document_entry(request, run, name, value, mode)
    if mode == "reference" or (isinstance(entry, dict) and "files" in entry):
        href = entry["href"] if isinstance(entry, dict) and "href" in entry else f"{job_url(request, run.id)}/results"
        return Response(status_code=204, headers={"Link": f'<{href}>; rel="{RESULTS}"'})
    if isinstance(value, dict) and "asset" in value:
        path = runtime.workflows.results.path(run.id, str(value["asset"]))
        return FileResponse(path, media_type=str(value.get("type") or "application/octet-stream"))
    if isinstance(value, str):
        return PlainTextResponse(value)
    return JSONResponse(value)


def _multipart(request: Request, run: WorkflowRun, chosen: dict[str, Any], modes: dict[str, str]) -> Response:
    boundary = secrets.token_hex(12)
    parts = []
    for name, value in chosen.items():
        entry = _document_entry(request, run, name, value, modes.get(name, "value"))
        if isinstance(entry, str):
            body, media = entry, "text/plain"
        else:
            body, media = json.dumps(entry), "application/json"
        parts.append(f"--{boundary}\r\nContent-Type: {media}\r\nContent-ID: <{name}>\r\n\r\n{body}\r\n")
    text = "".join(parts) + f"--{boundary}--\r\n"
    return Response(text.encode(), media_type=f'multipart/related; boundary="{boundary}"')
