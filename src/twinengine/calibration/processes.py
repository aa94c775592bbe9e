"""The engine process ``calibrate`` for process graphs: start a calibration of a twin's parameters and return
its id and progress (or, with ``wait``, its result). Registered when the runtime is built."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from twinengine.errors import ProcessParameterInvalid, TwinEngineError
from twinengine.workflows.context import current
from twinengine.workflows.registry import ProcessRegistry

if TYPE_CHECKING:
    from twinengine.calibration.runner import CalibrationRunner

__all__ = ["calibrate", "register_processes"]

FINAL = ("done", "error", "canceled")
_TEXT = [{"type": "string"}, {"type": "null"}]


def calibrate(runner: Callable[[], CalibrationRunner], twin: str | None = None, params: list[str] | None = None,
              method: str | None = None, objective: str | None = None, runs: int | None = None,
              seconds: float | None = None, workers: int = 1, seed: int = 0, wait: bool = False,
              timeout: float = 3600.0, site: str | None = None) -> dict[str, Any]:
    """Queue a calibration of the twin (default: the run's) as the run's identity; returns its id, status and
    percent, and once done (``wait``) the best parameters, their intervals and the proposed fork."""
    from twinengine.calibration import service
    from twinengine.calibration.schemas import CalibrationCreate

    ctx = current()
    ref = twin or ctx.twin
    if ref is None or ctx.db is None:
        raise ProcessParameterInvalid("calibrate: this run has no twin; pass twin")
    body_in = {"params": params, "method": method, "objective": objective, "runs": runs, "seconds": seconds,
               "workers": workers, "seed": seed, "site": site}
    try:
        body = CalibrationCreate.model_validate({k: v for k, v in body_in.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ProcessParameterInvalid(f"calibrate: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    try:
        with ctx.db.session() as session:
            row = service.start_calibration(session, principal=ctx.principal, twin_ref=ref, body=body)
            calibration_id = row.id
            runner().notify_after_commit(session)
    except TwinEngineError as exc:
        raise ProcessParameterInvalid(f"calibrate: {exc}") from None
    ctx.log("info", f"calibrate: calibration {calibration_id} of twin {ref} queued")
    deadline = time.monotonic() + timeout
    while True:
        with ctx.db.session(readonly=True) as session:
            found, twin_row = service.get_calibration(session, principal=ctx.principal,
                                                      calibration_id=calibration_id)
            read = service.read(session, found, twin_row)
        ctx.compute_progress(round(read.percent), 100)
        if not wait or read.status in FINAL:
            break
        if time.monotonic() > deadline:
            raise ProcessParameterInvalid(f"calibrate: calibration {calibration_id} did not end within "
                                          f"{timeout:g} s (it goes on: GET /api/v1/calibrations/{calibration_id})")
        time.sleep(0.5)
    if wait and read.status != "done":
        raise ProcessParameterInvalid(f"calibrate: calibration {calibration_id} {read.status}: {read.error}")
    return {"id": read.id, "twin": read.twin, "status": read.status, "percent": read.percent,
            "runs_done": read.runs_done, "method": read.method, "objective": read.objective,
            "best_score": read.best_score, "best": read.best,
            "interval": (read.summary or {}).get("interval"), "fork": read.fork, "site": read.site}


def register_processes(registry: ProcessRegistry, runner: Callable[[], CalibrationRunner]) -> None:
    def calibrate_impl(twin: str | None = None, params: list[str] | None = None, method: str | None = None,
                       objective: str | None = None, runs: int | None = None, seconds: float | None = None,
                       workers: int = 1, seed: int = 0, wait: bool = False, timeout: float = 3600.0,
                       site: str | None = None) -> dict[str, Any]:
        return calibrate(runner, twin, params, method, objective, runs, seconds, workers, seed, wait, timeout,
                         site)

    text = "Fit a twin's parameters to its observations (calibration), in the background"
    optional: dict[str, Any] = {"optional": True, "default": None}
    registry.register({
        "id": "calibrate", "summary": text, "categories": ["engine", "calibration"],
        "description": text + ": the app's model runs on the engine's workers with the chosen optimiser or "
                       "sampler within a budget (docs/calibration.md). Returns the calibration's id, status and "
                       "percent; with wait, its best parameters, their 90 % intervals and the proposed fork. The "
                       "twin changes only when a person accepts the proposal.",
        "parameters": [
            {"name": "twin", "description": "Default: the run's twin", "schema": _TEXT} | optional,
            {"name": "params", "description": "Parameters to fit (default: every one the app lets calibrate)",
             "schema": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]} | optional,
            {"name": "method", "description": "sceua, de, dream or emcee (default: the app's)",
             "schema": [{"type": "string", "enum": ["sceua", "de", "dream", "emcee"]}, {"type": "null"}]}
            | optional,
            {"name": "objective", "description": "nse, kge, rmse or likelihood (default: the app's)",
             "schema": [{"type": "string", "enum": ["nse", "kge", "rmse", "likelihood"]}, {"type": "null"}]}
            | optional,
            {"name": "runs", "description": "Budget of model runs (default: the app's)",
             "schema": [{"type": "integer", "minimum": 1}, {"type": "null"}]} | optional,
            {"name": "seconds", "description": "Budget of time", "schema": [{"type": "number"}, {"type": "null"}]}
            | optional,
            {"name": "workers", "description": "Model runs in parallel (default 1)",
             "schema": {"type": "integer", "minimum": 1}, "optional": True, "default": 1},
            {"name": "seed", "description": "The same seed proposes the same runs (default 0)",
             "schema": {"type": "integer", "minimum": 0}, "optional": True, "default": 0},
            {"name": "wait", "description": "Wait for the result (default: return at once with the id)",
             "schema": {"type": "boolean"}, "optional": True, "default": False},
            {"name": "timeout", "description": "Seconds to wait with wait (default 3600)",
             "schema": {"type": "number"}, "optional": True, "default": 3600.0},
            {"name": "site", "description": "Compute site (dask or slurm) whose Dask cluster runs the model "
                                            "(default: the engine's own workers)", "schema": _TEXT} | optional],
        "returns": {"description": "id, twin, status, percent, runs_done, method, objective, best_score, best, "
                                   "interval, fork, site", "schema": {"type": "object"}}}, calibrate_impl,
        cacheable=False)
