"""The SDK's workflows namespace: ``client.workflows.run(...)``, runs, logs, provenance, results, triggers."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import TypeAdapter

from twinengine.errors import InvalidInput
from twinengine.quality.pedigree import QualityReport
from twinengine.workflows.run_types import Run, RunList, RunResult
from twinengine.workflows.schemas import FINAL, LogRead, RunRead, TriggerCreated, TriggerRead

if TYPE_CHECKING:
    from twinengine.transport import Transport

__all__ = ["WorkflowsClient"]


def _seg(value: str) -> str:
    return quote(value, safe="")


class WorkflowsClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def run(self, twin: str, workflow: str, parameters: dict[str, Any] | None = None, *, no_cache: bool = False,
            sync: bool = False, what_if: bool = False, fork_name: str | None = None, site: str | None = None,
            exclude_sites: builtins.list[str] | None = None, start: dict[str, Any] | None = None) -> Run:
        """Start a workflow of a twin's app; ``sync`` answers when the run ended; ``what_if`` runs it on a new
        fork of the twin (named in the run's ``twin_name``; ``fork_name`` chooses it and implies ``what_if``),
        leaving the twin's own state as it is. A run starts from the twin's state where the app maps it
        (``initial_state``); ``start`` picks another: ``{"revision": N}``, ``{"at": time}`` or ``{"state": False}``."""
        body: dict[str, Any] = {"workflow": workflow, "parameters": parameters or {},
                                "options": {"no_cache": no_cache}, "mode": "sync" if sync else "async"}
        if start is not None:
            body["start"] = start
        if site is not None or exclude_sites:  # else the engine places it (docs/compute.md)
            body["options"].update(site=site, exclude_sites=exclude_sites or [])
        if what_if or fork_name is not None:
            body["what_if"] = {} if fork_name is None else {"name": fork_name}
        return self._transport.send(Run, "POST", f"/api/v1/twins/{_seg(twin)}/runs", body, until_done=sync)

    def submit(self, process: dict[str, Any], parameters: dict[str, Any] | None = None, *, twin: str | None = None,
               no_cache: bool = False, sync: bool = False, options: dict[str, Any] | None = None) -> Run:
        """Run an ad-hoc openEO process graph."""
        body: dict[str, Any] = {"process": process, "parameters": parameters or {}, "mode": "sync" if sync else "async",
                                "options": {"no_cache": no_cache, **(options or {})}}
        if twin:
            body["twin"] = twin
        return self._transport.send(Run, "POST", "/api/v1/runs", body, until_done=sync)

    def get(self, run_id: str) -> Run:
        return self._transport.get(Run, f"/api/v1/runs/{_seg(run_id)}")

    def runs(self, *, twin: str | None = None, status: str | None = None, limit: int = 50) -> RunList:
        return self._transport.get(RunList, "/api/v1/runs", twin=twin, status=status, limit=limit)

    def cancel(self, run_id: str) -> Run:
        return self._transport.send(Run, "POST", f"/api/v1/runs/{_seg(run_id)}/cancel", {})

    def logs(self, run_id: str) -> builtins.list[LogRead]:
        data = self._transport.request("GET", f"/api/v1/runs/{_seg(run_id)}/logs").json()
        return TypeAdapter(builtins.list[LogRead]).validate_python(data)

    def provenance(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._transport.request("GET", f"/api/v1/runs/{_seg(run_id)}/provenance").json()
        return result

    def quality(self, run_id: str) -> QualityReport:
        """The quality of every input the run used, and the worst flag among them (pedigree)."""
        return self._transport.get(QualityReport, f"/api/v1/runs/{_seg(run_id)}/quality")

    def download(self, run_id: str, name: str, dest: Path | str) -> Path:
        response = self._transport.request("GET", f"/api/v1/runs/{_seg(run_id)}/results/{_seg(name)}")
        path = Path(dest)
        path.write_bytes(response.content)
        return path

    def result(self, run_id: str, name: str | None = None) -> RunResult:
        """One result asset (default: the run's first), in memory; ``.to_xarray()`` opens a netCDF one."""
        run = self.get(run_id)
        assets = {a["name"]: a for a in run.assets}
        if not assets:
            raise InvalidInput(f"run {run_id} has no result assets (status {run.status})")
        chosen = assets.get(name) if name is not None else next(iter(assets.values()))
        if chosen is None:
            raise InvalidInput(f"run {run_id} has no asset {name!r} (assets: {', '.join(assets)})")
        response = self._transport.request("GET", f"/api/v1/runs/{_seg(run_id)}/results/{_seg(chosen['name'])}")
        return RunResult(run_id=run_id, name=chosen["name"], media_type=str(chosen.get("type", "")),
                         content=response.content)

    def wait(self, run_id: str, *, poll: float = 0.25, timeout: float = 3600.0,
             on_progress: Callable[[RunRead], None] | None = None) -> Run:
        """Poll until the run ended; ``on_progress`` sees every state read."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(run_id)
            if on_progress is not None:
                on_progress(run)
            if run.status in FINAL or time.monotonic() > deadline:
                return run
            time.sleep(poll)

    def triggers(self, twin: str) -> builtins.list[TriggerRead]:
        data = self._transport.request("GET", f"/api/v1/twins/{_seg(twin)}/triggers").json()
        return TypeAdapter(builtins.list[TriggerRead]).validate_python(data)

    def add_trigger(self, twin: str, name: str, kind: str, workflow: str, **config: Any) -> TriggerCreated:
        body = {"name": name, "kind": kind, "workflow": workflow, **config}
        return self._transport.send(TriggerCreated, "POST", f"/api/v1/twins/{_seg(twin)}/triggers", body)

    def remove_trigger(self, twin: str, name: str) -> None:
        self._transport.request("DELETE", f"/api/v1/twins/{_seg(twin)}/triggers/{_seg(name)}")
