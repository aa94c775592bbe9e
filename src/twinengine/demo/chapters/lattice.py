"""The lattice-phi4 chapter (``twin demo --app lattice-phi4``): an Optuna search over the flow's size, then a
normalising flow of that size trained by reverse KL as the twin's model, a version trained to nothing
rejected by the gate's acceptance band, flow-based MCMC and a local Metropolis reference run as workflows,
their <phi^2> and chi_2 compared with errors, and a plot of both chains' magnetisation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twinengine.demo.chapters.lake import _provider
from twinengine.demo.chapters.ml import wait_for_training
from twinengine.demo.chapters.twins import _free_name
from twinengine.demo.context import DemoContext, skipped_without_ml
from twinengine.demo.plot import plot_histograms

__all__ = ["flow_sampling"]

MODEL = "flow"
UNTRAINED = {"epochs": 1, "optimizer": {"lr": 1e-7}}  # the initial flow, barely moved: the gate must refuse it


def _lake_endpoint(ctx: DemoContext) -> None:
    """Workflow results land in the lake on site-a (the demo's engine is set up that way)."""
    pat = _provider(ctx)
    if "site-a" not in {e.name for e in pat.lake.endpoints().items}:
        pat.lake.add_endpoint("site-a", "file", str(ctx.runtime.data_dir / "lake" / "site-a"),
                              attributes={"site": "A", "tier": "1", "type": "disk"})


def _train(ctx: DemoContext, twin: str, config: dict[str, Any], label: str) -> Any:
    uma = ctx.client("uma")
    run = wait_for_training(ctx, twin, uma.ml.train(twin, MODEL, config=config).id, label, timeout=600)
    decision = uma.ml.trail(twin, MODEL)[0].decision
    return run, decision


def _search(ctx: DemoContext, twin: str) -> dict[str, Any]:
    """Optuna over the flow's size (the app's search space: layers, hidden channels), one epoch per trial,
    before the real training; returns the best trial's ``params``."""
    uma, trials = ctx.client("uma"), ctx.options.tune_trials
    started = uma.ml.tune(twin, MODEL, {"trials": trials}, config={"epochs": 1})
    run = wait_for_training(ctx, twin, started.id, f"searching the flow's size ({trials} trials)", timeout=600)
    params = dict((run.trigger.get("best") or {}).get("params") or {})
    ctx.say(f"Optuna, {trials} trials of one epoch over the app's space (layers 4-12, hidden 4-16): best "
            f"{', '.join(f'{k} {v}' for k, v in sorted(params.items()))} (reverse KL {run.metrics['val_loss']:.3f}); "
            f"the flow is trained at that size")
    ctx.facts["lattice_search"] = {"run": run.id, "params": params, "metrics": run.metrics,
                                   "version": run.model_version}
    return params


def _workflow(ctx: DemoContext, twin: str, name: str,
              parameters: dict[str, Any]) -> tuple[Any, np.ndarray[Any, Any]]:
    uma = ctx.client("uma")
    run = uma.workflows.run(twin, name, parameters, sync=True)
    if run.status != "finished":
        raise RuntimeError(f"the {name} workflow ended as {run.status}: {run.error}")
    asset = run.assets[0]
    path = uma.workflows.download(run.id, asset["name"], ctx.runtime.data_dir / f"{twin}-{name}.npy")
    return run, np.load(path, allow_pickle=False)


def _row(label: str, flow: tuple[float, float], ref: tuple[float, float]) -> tuple[str, str, float]:
    pull = abs(flow[0] - ref[0]) / math.hypot(flow[1], ref[1])
    return label, f"flow {flow[0]:.4f} ± {flow[1]:.4f} | reference {ref[0]:.4f} ± {ref[1]:.4f} | {pull:.1f} sigma", pull


def flow_sampling(ctx: DemoContext) -> None:
    if skipped_without_ml(ctx, "lattice", "lattice-phi4", "torch, mlflow, optuna"):
        return
    o, uma = ctx.options, ctx.client("uma")
    _lake_endpoint(ctx)
    params = {"L": o.lattice_size, "m2": -4.0, "lam": 8.0}
    twin = uma.create_twin(ctx.facts["app"], _free_name(uma, f"phi4-l{o.lattice_size}"), params,
                           description="2D phi^4 on a periodic lattice, sampled with a normalising flow")
    ctx.say(f"uma created twin {twin.name}: L = {o.lattice_size}, m^2 = -4, lambda = 8")
    size = _search(ctx, twin.name) if o.tune_trials else {}
    good, accepted = _train(ctx, twin.name, {"epochs": o.epochs, **({"params": size} if size else {})},
                            f"training the flow ({o.epochs} epochs)")
    verdict = "champion" if accepted and accepted.accepted else f"rejected: {accepted and accepted.reason}"
    ctx.say(f"flow v{good.model_version}: reverse KL {good.metrics['val_loss']:.3f}, acceptance "
            f"{good.metrics['acceptance_rate']:.2f}, ESS/sample {good.metrics['ess']:.2f} on the held-out draws; "
            f"gate: {verdict}")
    bad, rejected = _train(ctx, twin.name, UNTRAINED | ({"params": size} if size else {}), "an untrained flow")
    verdict = "accepted" if rejected and rejected.accepted else f"rejected: {rejected and rejected.reason}"
    ctx.say(f"flow v{bad.model_version} (one epoch at lr 1e-7): acceptance {bad.metrics['acceptance_rate']:.3f}; "
            f"gate: {verdict}")
    flow_run, configs = _workflow(ctx, twin.name, "sample", {"n": o.flow_samples, "seed": o.seed})
    ref_run, ref_m = _workflow(ctx, twin.name, "reference", {"sweeps": o.reference_sweeps, "chains": 16,
                                                             "seed": o.seed + 1})
    state = {k: v.value for k, v in uma.get_state(twin.name).reported.items()}
    rows = [_row("<phi^2>", (state["phi2"], state["phi2_err"]), (state["ref_phi2"], state["ref_phi2_err"])),
            _row("chi_2", (state["chi2"], state["chi2_err"]), (state["ref_chi2"], state["ref_chi2_err"]))]
    for label, text, _pull in rows:
        ctx.say(f"{label}: {text}")
    flow_m = configs.sum(axis=(-2, -1))
    path = o.plot or ctx.runtime.data_dir / "lattice-phi4.png"
    plot_histograms(path, {f"flow MCMC ({len(flow_m)} steps, acceptance {state['acceptance_rate']:.2f})": flow_m,
                           f"local Metropolis ({len(ref_m)} configurations)": ref_m},
                    xlabel="magnetisation M = sum_x phi_x",
                    title=f"{twin.name}: L = {o.lattice_size}, m^2 = -4, lambda = 8")
    ctx.facts["twin_name"] = twin.name
    ctx.facts["lattice"] = {
        "twin": twin.name, "parameters": params, "state": state, "plot": str(path),
        "champion": {"version": good.model_version, "metrics": good.metrics,
                     "accepted": bool(accepted and accepted.accepted)},
        "untrained": {"version": bad.model_version, "metrics": bad.metrics,
                      "accepted": bool(rejected and rejected.accepted), "reason": rejected and rejected.reason},
        "pulls": {label: pull for label, _t, pull in rows},
        "runs": {"sample": flow_run.id, "reference": ref_run.id},
        "assets": {"sample": flow_run.assets[0], "reference": ref_run.assets[0]},
        "configurations_shape": list(configs.shape)}
    ctx.summary += [(label, text) for label, text, _pull in rows]
    if size:
        ctx.summary.append(("search", f"Optuna, {o.tune_trials} trials: "
                                      f"{', '.join(f'{k} {v}' for k, v in sorted(size.items()))}"))
    ctx.summary += [
        ("flow chain", f"acceptance {state['acceptance_rate']:.3f}, ESS/sample {state['ess_per_sample']:.3f}, "
                       f"tau_int {state['tau_int']:.1f} steps over {state['flow_samples']} proposals"),
        ("gate", f"v{good.model_version} champion; v{bad.model_version} (untrained) rejected: "
                 f"{rejected.reason if rejected else '?'}"),
        ("configurations", f"{flow_run.assets[0].get('did') or flow_run.assets[0]['name']} ({configs.shape}, .npy)"),
        ("plot", str(path))]
