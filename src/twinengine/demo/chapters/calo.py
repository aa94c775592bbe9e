"""The calo-fastsim chapter (``twin demo --app calo-fastsim``): the physical twin, a GFlash-parametrised simulator
of electron showers in the CaloChallenge dataset-2 calorimeter, writes its showers as the challenge's HDF5 and
as ROOT, read back exactly; the simulator against itself gives the metrics' null figures; the twin's surrogate
is trained and gated through the engine on the simulator's showers, and the app's validate workflow draws
showers from the champion and scores them against simulated ones at the same energies. A small training (a few
epochs on a few thousand showers) keeps the story short: the full figures are bench/calo_fastsim.py's."""

from __future__ import annotations

import importlib
import time
from typing import Any

import numpy as np

from twinengine.demo.chapters.lattice import _lake_endpoint
from twinengine.demo.chapters.ml import wait_for_training
from twinengine.demo.chapters.twins import _free_name
from twinengine.demo.context import DemoContext, skipped_without_ml

__all__ = ["fast_simulation"]

MODEL = "surrogate"
PARAMETERS = {"training_showers": 4000, "held_out_showers": 1000}
EPOCHS = 6
FILE_SHOWERS = 500  # written to HDF5 and ROOT
NULL_SHOWERS = 2000  # per side of the null test
SCORED = 500  # drawn from the surrogate by the validate workflow


def fast_simulation(ctx: DemoContext) -> None:
    if skipped_without_ml(ctx, "calo", "calo-fastsim"):
        return
    _lake_endpoint(ctx)  # the validate workflow's results are registered in the lake on site-a
    uma, package = ctx.client("uma"), ctx.app_package.__name__
    simulator = importlib.import_module(f"{package}.simulator")
    calofile = importlib.import_module(f"{package}.calofile")
    features = importlib.import_module(f"{package}.features")
    metrics = importlib.import_module(f"{package}.metrics")
    started = time.perf_counter()
    seed = 7000 + ctx.options.seed
    files = _files(ctx, simulator, calofile, seed)
    null = _null_test(ctx, simulator, features, metrics, seed)
    twin = uma.create_twin(ctx.facts["app"], _free_name(uma, "calo-ds2"), PARAMETERS,
                           description="Fast simulation of the CaloChallenge dataset-2 calorimeter (simulated)")
    ctx.facts["twin_name"] = twin.name
    run = wait_for_training(ctx, twin.name, uma.ml.train(twin.name, MODEL, config={"epochs": EPOCHS}).id,
                            f"training the surrogate ({EPOCHS} epochs)", timeout=900)
    ctx.say(f"uma created twin {twin.name} and trained its surrogate through the engine on "
            f"{PARAMETERS['training_showers']} simulated showers: version {run.model_version}, E_tot/E_inc "
            f"separation {run.metrics['etot_separation']:.4f} on {PARAMETERS['held_out_showers']} held out "
            "(the gate's metric)")
    done = uma.workflows.run(twin.name, "validate", {"n": SCORED, "seed": seed + 2}, sync=True)
    if done.status != "finished":
        raise RuntimeError(f"the validate workflow ended as {done.status}: {done.error}")
    state = {k: v.value for k, v in uma.get_state(twin.name).reported.items()}
    ctx.say(f"validate workflow: {state['showers_scored']} showers drawn from the champion against simulated ones "
            f"at the same energies: E_tot/E_inc separation {state['etot_separation']:.4f} (goal <= 0.01), KPD x "
            f"10^3 {state['kpd_e3']:.1f} +- {state['kpd_e3_err']:.1f} (goal <= 1.0; the null test's "
            f"{null['kpd_e3']:.2f}), mean E_tot/E_inc {state['e_ratio']:.4f} against {state['ref_e_ratio']:.4f}")
    seconds = time.perf_counter() - started
    answer = uma.view(twin.name, "fastsim").summary_text
    ctx.say(f"the portal's view of {twin.name} answers: {answer}")
    ctx.facts["calo"] = {"answer": answer, "twin": twin.name, "seed": seed, "files": files, "null": null,
                         "state": state, "model_version": run.model_version, "training": run.metrics,
                         "seconds": seconds}
    ctx.summary += [
        ("showers", f"{FILE_SHOWERS} simulated, HDF5 -> ROOT -> HDF5 exact ({files['hdf5']})"),
        ("null test", f"simulator against itself: classifier AUC {null['auc']:.3f} (0.50 +- 0.02)"),
        ("surrogate", f"separation {state['etot_separation']:.4f} (<= 0.01), KPD x 10^3 {state['kpd_e3']:.1f} "
                      "(<= 1.0): a short training here; bench/calo_fastsim.py has the full figures")]


def _files(ctx: DemoContext, simulator: Any, calofile: Any, seed: int) -> dict[str, Any]:
    """Showers written as the challenge's HDF5, converted to ROOT and back: the same bytes."""
    sample = simulator.simulate(FILE_SHOWERS, seed)
    folder = ctx.runtime.data_dir / "calo-fastsim"
    folder.mkdir(parents=True, exist_ok=True)
    h5 = calofile.write_hdf5(folder / "showers.h5", sample)
    root = calofile.hdf5_to_root(h5, folder / "showers.root")
    back = calofile.read_hdf5(calofile.root_to_hdf5(root, folder / "showers-again.h5"))
    exact = np.array_equal(back.showers, sample.showers) and \
        np.array_equal(back.incident_energies, sample.incident_energies)
    if not exact:
        raise RuntimeError(f"{h5} did not come back from ROOT as written")
    ctx.say(f"physical twin: a GFlash simulator (Geant4 cannot run here) wrote {FILE_SHOWERS} electron showers of "
            f"1 GeV-1 TeV in 45 x 16 x 9 voxels as {h5.name} ({h5.stat().st_size // 1000} kB) and {root.name}; "
            "HDF5 -> ROOT -> HDF5 gave them back exactly")
    return {"hdf5": str(h5), "root": str(root), "showers": FILE_SHOWERS, "exact": exact}


def _null_test(ctx: DemoContext, simulator: Any, features: Any, metrics: Any, seed: int) -> dict[str, float]:
    """The simulator against itself (independent seeds): what the metrics give when there is nothing to find."""
    one, two = (features.features(simulator.simulate(NULL_SHOWERS, s)) for s in (seed + 10, seed + 11))
    auc = float(metrics.classifier_auc(one.classifier_inputs(), two.classifier_inputs(), seed=seed))
    distance = metrics.kpd(features.kernel_features(one), features.kernel_features(two), batches=5,
                           batch_size=NULL_SHOWERS // 2)
    null = {"auc": auc, "separation": float(metrics.separation_power(one.e_ratio, two.e_ratio)),
            "kpd_e3": 1e3 * float(distance.value), "kpd_e3_err": 1e3 * float(distance.error)}
    ctx.say(f"null test, simulator against simulator ({NULL_SHOWERS} showers each): high-level classifier AUC "
            f"{auc:.3f}, E_tot/E_inc separation {null['separation']:.4f}, KPD x 10^3 {null['kpd_e3']:.2f} +- "
            f"{null['kpd_e3_err']:.2f}")
    return null
