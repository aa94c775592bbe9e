"""The AI lifecycle chapter: a small PyTorch model corrects the reach's rainfall-runoff simulation (its first
version trained on a compute site, a Dask cluster started here); the catchment then changes (more runoff), the
engine's drift policy notices the residuals moved, retrains on the recent records, the gate promotes the new
version, and the summary shows the error before and after."""

from __future__ import annotations

import importlib
import time
from datetime import timedelta
from typing import Any

from twinengine.demo.chapters.twins import STATION, _free_name
from twinengine.demo.context import DemoContext, skipped_without_ml
from twinengine.demo.plot import plot_corrections

__all__ = ["retrain_on_drift"]

MODEL = "runoff_correction"
SITE = "trainer"  # the compute site the first version trains on
BASE_HOURS, DRIFT_HOURS = 96.0, 48.0
CHANGED_RUNOFF = 0.7  # land-use change: the twin still believes 0.45


def _readings(ctx: DemoContext, params: dict[str, Any], *, runoff: float, hours: float, start: Any,
              seed: int) -> list[dict[str, Any]]:
    reach = ctx.app_package
    catchment = reach.Catchment.from_parameters(params | {"runoff_coefficient": runoff})
    sim = reach.ReachSimulator(STATION, catchment, reach.RatingCurve(params["rating_a"], params["rating_b"],
                                                                     params["datum_m"]),
                               start=start, step=timedelta(minutes=ctx.options.step_minutes), seed=seed,
                               storms_per_day=2.0)
    return [{"time": r.time.isoformat(), "station": r.station, "rain": r.rain, "level": r.level}
            for r in sim.readings(hours)]


def wait_for_training(ctx: DemoContext, twin: str, run_id: str, label: str, *, timeout: float = 300) -> Any:
    """Wait for a training run with a progress bar; a run that did not succeed stops the chapter."""
    uma = ctx.client("uma")
    advance = ctx.track(label, 100)
    shown = [0]

    def show(run: Any) -> None:
        advance(int(run.progress) - shown[0])
        shown[0] = int(run.progress)

    run = uma.ml.wait(twin, run_id, timeout=timeout, on_progress=show)
    if run.status != "succeeded":
        raise RuntimeError(f"training run {run_id} failed: {run.error}")
    return run


def retrain_on_drift(ctx: DemoContext) -> None:
    if skipped_without_ml(ctx, "model", "model", "torch, mlflow, optuna"):
        return
    o = ctx.options
    uma, gauge = ctx.client("uma"), ctx.client("gauge-rr01")
    twin = uma.create_twin(ctx.facts["app"], _free_name(uma, "demo-reach-ml"), {"station": STATION},
                           description="River reach with a model-corrected simulation")
    uma.grant(twin.name, "gauge-rr01", "operate")
    params = twin.parameters
    base = _readings(ctx, params, runoff=params["runoff_coefficient"], hours=BASE_HOURS, start=o.start,
                     seed=o.seed + 2)
    gauge.streams.append(twin.name, "gauges", base, producer="rr01-ml", seq=0)
    first = _train_on_a_site(ctx, twin.name)
    where = ("a bubblewrap sandbox" if ctx.runtime.workers.sandbox.effective() == "bwrap"
             else "a worker process (no sandbox here)")
    ctx.say(f"trained {MODEL} v{first.model_version} on {len(base)} readings in {where} of the app (the engine "
            f"never imports its code) on site {first.site}, a Dask cluster's worker (its epochs and checkpoints came "
            f"back to the engine): held-out level RMSE {first.metrics['rmse_level']:.3f} m (simulation alone "
            f"{first.metrics['rmse_simulation']:.3f} m)")
    if "interval_half_width" in first.metrics:  # the split-conformal interval the version carries
        m = first.metrics
        ctx.say(f"its {m['interval_level']:.0%} prediction interval: ±{m['interval_half_width']:.3f} m, covering "
                f"{m['interval_coverage']:.0%} of the held-out levels it was not calibrated on")

    # The catchment changes; the twin's parameters do not. The policy watches the model's residuals.
    drifted = _readings(ctx, params, runoff=CHANGED_RUNOFF, hours=DRIFT_HOURS,
                        start=o.start + timedelta(hours=BASE_HOURS), seed=o.seed + 3)
    gauge.streams.append(twin.name, "gauges", drifted, producer="rr01-ml", seq=len(base))
    uma.ml.set_policy(twin.name, MODEL, drift={"method": "ks", "threshold": 0.01}, window=len(drifted))
    ctx.say(f"the catchment changed (runoff coefficient {params['runoff_coefficient']} → {CHANGED_RUNOFF}); "
            f"{len(drifted)} new readings arrived; a drift policy (KS test on the residuals) watches them")
    deadline = time.monotonic() + 60
    trail = uma.ml.trail(twin.name, MODEL)
    while trail[0].trigger.get("kind") != "drift" and time.monotonic() < deadline:
        time.sleep(0.3)
        trail = uma.ml.trail(twin.name, MODEL)
    if trail[0].trigger.get("kind") != "drift":
        raise RuntimeError("the drift policy did not trigger a retraining")
    second = wait_for_training(ctx, twin.name, trail[0].run, "retraining on drift")
    trail = uma.ml.trail(twin.name, MODEL)
    decision = trail[0].decision
    assert decision is not None
    pvalue = trail[0].trigger["scores"][0]
    ctx.say(f"drift detected (KS p-value {pvalue:.2g} < 0.01) → run {second.id} → v{second.model_version}: "
            f"gate {'promoted it to champion' if decision.accepted else 'rejected it: ' + decision.reason}")

    before = decision.metrics.get("champion.rmse_level", float("nan"))
    after = second.metrics["rmse_level"]
    simulation = second.metrics["rmse_simulation"]
    v1 = uma.ml.predict(twin.name, MODEL, {"parameters": params, "records": drifted}, version=first.model_version)
    v2 = uma.ml.predict(twin.name, MODEL, {"parameters": params, "records": drifted})
    app_model = importlib.import_module(f"{ctx.app_package.__name__}.model")
    sim = app_model.simulate(params, [dict(r, time=_time(r["time"])) for r in drifted])
    times = [_time(r["time"]) for r in drifted]
    path = ctx.runtime.data_dir / "river-reach-model.png"
    plot_corrections(path, times=times, observed=[r["level"] for r in drifted],
                     series={"simulation (outdated parameters)": sim, f"corrected by v{first.model_version}":
                             v1["outputs"], f"corrected by v{v2['version']} (retrained)": v2["outputs"]},
                     title=f"{twin.name}: after the catchment changed; held-out RMSE {before:.3f} m → {after:.3f} m")
    ctx.facts["ml"] = {"twin": twin.name, "first": first.model_dump(mode="json"),
                       "second": second.model_dump(mode="json"), "accepted": decision.accepted,
                       "rmse_before": before, "rmse_after": after, "rmse_simulation": simulation,
                       "champion": v2["version"], "plot": str(path), "trail": len(trail)}
    ctx.summary += [
        ("model", f"{MODEL} of {twin.name}: v{first.model_version} trained, drift (KS p {pvalue:.2g}) → "
                  f"v{second.model_version} {'promoted' if decision.accepted else 'rejected'} by the gate"),
        ("model error", f"held-out level RMSE after the change: simulation {simulation:.3f} m, champion before "
                        f"{before:.3f} m, retrained {after:.3f} m"),
        ("model plot", str(path)),
    ]


def _train_on_a_site(ctx: DemoContext, twin: str) -> Any:
    """The first version trains on a compute site: a Dask cluster started here (its worker in this process's
    threads), registered as the site ``trainer``. The app's sandboxed training worker starts on the site's
    worker, and the engine answers its epochs and keeps its checkpoints over the site's client."""
    from distributed import LocalCluster

    admin, uma = ctx.client("admin"), ctx.client("uma")
    local_cluster: Any = LocalCluster  # untyped in distributed
    with local_cluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
                       dashboard_address=None) as cluster:
        admin.compute.add_site(SITE, "dask", address=str(cluster.scheduler_address), cores=2, memory_bytes=2**30)
        try:
            return wait_for_training(ctx, twin, uma.ml.train(twin, MODEL, site=SITE).id,
                                     f"training {MODEL} v1 on site {SITE}")
        finally:
            admin.compute.remove_site(SITE)


def _time(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)
