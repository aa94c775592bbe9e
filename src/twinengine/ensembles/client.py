"""The SDK's ensembles namespace: ``client.ensembles.run(...)``, scenarios and comparisons."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import yaml

from twinengine.ensembles.compare import Comparison
from twinengine.ensembles.scenarios import ScenarioRun
from twinengine.ensembles.schemas import EnsembleRead
from twinengine.workflows.schemas import FINAL

if TYPE_CHECKING:
    from twinengine.transport import Transport

__all__ = ["EnsemblesClient"]


class EnsemblesClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def run(self, twin: str, workflow: str, *, members: int | None = None, parameters: dict[str, Any] | None = None,
            perturb: dict[str, Any] | None = None, seed: int | None = None, forks: list[str] | None = None,
            parameter_sets: list[dict[str, Any]] | None = None, threshold: float | None = None,
            quantiles: list[float] | None = None, sync: bool = False,
            options: dict[str, Any] | None = None, start: dict[str, Any] | None = None) -> EnsembleRead:
        """Run a workflow of a twin as an ensemble: ``members`` perturbed (the app's distributions, or
        ``perturb``), one member per fork, or one per parameter set; ``sync`` answers when it ended;
        ``options`` as a run's (``site``, ``exclude_sites``: where it is placed); ``start`` as a run's (the
        twin's state the members start from: now by default)."""
        body = {"workflow": workflow, "members": members, "parameters": parameters or {}, "perturb": perturb,
                "seed": seed, "forks": forks, "parameter_sets": parameter_sets, "threshold": threshold,
                "quantiles": quantiles, "mode": "sync" if sync else "async", "options": options, "start": start}
        return self._transport.send(EnsembleRead, "POST", f"/api/v1/twins/{quote(twin, safe='')}/ensembles",
                                    {k: v for k, v in body.items() if v is not None}, until_done=sync)

    def get(self, ensemble_id: str) -> EnsembleRead:
        return self._transport.get(EnsembleRead, f"/api/v1/ensembles/{quote(ensemble_id, safe='')}")

    def wait(self, ensemble_id: str, *, poll: float = 0.25, timeout: float = 3600.0,
             on_progress: Callable[[EnsembleRead], None] | None = None) -> EnsembleRead:
        deadline = time.monotonic() + timeout
        while True:
            read = self.get(ensemble_id)
            if on_progress is not None:
                on_progress(read)
            if read.status in FINAL or time.monotonic() > deadline:
                return read
            time.sleep(poll)

    def scenario(self, source: str | Path | dict[str, Any], *, twin: str | None = None) -> ScenarioRun:
        """Run a scenario: a document, its YAML/JSON text, or a file path; ``twin`` replaces its twin."""
        if isinstance(source, Path):
            source = source.read_text()
        doc = yaml.safe_load(source) if isinstance(source, str) else dict(source)
        if twin is not None and isinstance(doc, dict):
            doc["twin"] = twin
        return self._transport.send(ScenarioRun, "POST", "/api/v1/scenarios", doc)

    def compare(self, twins: list[str], *, properties: list[str] | None = None,
                workflow: str | None = None) -> Comparison:
        params: dict[str, Any] = {"twin": twins}
        if properties:
            params["property"] = properties
        if workflow:
            params["workflow"] = workflow
        return Comparison.model_validate(self._transport.request("GET", "/api/v1/compare", params=params).json())
