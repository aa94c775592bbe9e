"""The SDK's ml namespace: ``client.ml.train(...)``, runs, models with their history, trail, policy, predict."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import TypeAdapter

from twinengine.ml.schemas import FINAL, PolicyRead, TrailEntry, TrainingRunPage, TrainingRunRead, TwinModelRead
from twinengine.quality.pedigree import QualityReport

if TYPE_CHECKING:
    from twinengine.transport import Transport

__all__ = ["MLClient"]

def _seg(value: str) -> str:
    return quote(value, safe="")


class MLClient:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def train(self, twin: str, model: str, *, config: dict[str, Any] | None = None, nproc: int = 1,
              data: dict[str, Any] | None = None, trigger: dict[str, Any] | None = None, site: str | None = None,
              exclude_sites: list[str] | None = None, gpus: int = 0) -> TrainingRunRead:
        """Queue a training run; ``site`` pins it to a compute site; ``gpus`` or ``exclude_sites`` let the
        engine place it by its rule; else it trains on the engine's own site (``placement`` says where, why)."""
        body: dict[str, Any] = {"config": config or {}, "nproc": nproc, "data": data or {}}
        if trigger is not None:
            body["trigger"] = trigger
        if site is not None:
            body["site"] = site
        if exclude_sites:
            body["exclude_sites"] = exclude_sites
        if gpus:
            body["gpus"] = gpus
        return self._transport.send(TrainingRunRead, "POST",
                                    f"/api/v1/twins/{_seg(twin)}/models/{_seg(model)}/train", body)

    def tune(self, twin: str, model: str, tune: dict[str, Any], *, config: dict[str, Any] | None = None,
             data: dict[str, Any] | None = None) -> TrainingRunRead:
        """Optuna search (``tune``: trials, parallel, space, metric, direction), then train the best."""
        body: dict[str, Any] = {"config": config or {}, "data": data or {}, "tune": tune}
        return self._transport.send(TrainingRunRead, "POST",
                                    f"/api/v1/twins/{_seg(twin)}/models/{_seg(model)}/train", body)

    def run(self, twin: str, run_id: str) -> TrainingRunRead:
        return self._transport.get(TrainingRunRead, f"/api/v1/twins/{_seg(twin)}/training-runs/{_seg(run_id)}")

    def runs(self, twin: str, *, model: str | None = None, limit: int = 50, offset: int = 0) -> TrainingRunPage:
        query = {k: v for k, v in {"model": model, "limit": limit, "offset": offset}.items() if v is not None}
        data = self._transport.request("GET", f"/api/v1/twins/{_seg(twin)}/training-runs", params=query).json()
        return TrainingRunPage.model_validate(data)

    def stop(self, twin: str, run_id: str) -> TrainingRunRead:
        """Stop a run: a queued one at once, a running one at the end of its current epoch."""
        return self._transport.send(TrainingRunRead, "POST",
                                    f"/api/v1/twins/{_seg(twin)}/training-runs/{_seg(run_id)}/stop", None)

    def wait(self, twin: str, run_id: str, *, timeout: float = 600.0, poll: float = 0.3,
             on_progress: Callable[[TrainingRunRead], None] | None = None) -> TrainingRunRead:
        """Poll until the run ends; ``on_progress`` sees every state read."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(twin, run_id)
            if on_progress is not None:
                on_progress(run)
            if run.status in FINAL or time.monotonic() > deadline:
                return run
            time.sleep(poll)

    def models(self, twin: str) -> list[TwinModelRead]:
        data = self._transport.request("GET", f"/api/v1/twins/{_seg(twin)}/models").json()
        return TypeAdapter(list[TwinModelRead]).validate_python(data)

    def trail(self, twin: str, model: str) -> list[TrailEntry]:
        data = self._transport.request("GET", f"/api/v1/twins/{_seg(twin)}/models/{_seg(model)}/trail").json()
        return TypeAdapter(list[TrailEntry]).validate_python(data)

    def quality(self, twin: str, model: str, version: str) -> QualityReport:
        """The quality of the records a model version was trained on (pedigree)."""
        return self._transport.get(QualityReport, f"/api/v1/twins/{_seg(twin)}/models/{_seg(model)}/versions/"
                                                  f"{_seg(version)}/quality")

    def set_policy(self, twin: str, model: str, **policy: Any) -> PolicyRead:
        return self._transport.send(PolicyRead, "PUT", f"/api/v1/twins/{_seg(twin)}/models/{_seg(model)}/policy",
                                    policy)

    def policy(self, twin: str, model: str) -> PolicyRead:
        return self._transport.get(PolicyRead, f"/api/v1/twins/{_seg(twin)}/models/{_seg(model)}/policy")

    def predict(self, twin: str, model: str, inputs: Any, *, version: str | None = None) -> dict[str, Any]:
        params = {"version": version} if version else {}
        response = self._transport.request("POST", f"/api/v1/twins/{_seg(twin)}/models/{_seg(model)}/predict",
                                           json={"inputs": inputs}, params=params)
        result: dict[str, Any] = response.json()
        return result
