"""calo-fastsim's science figures: the surrogate (trained as the engine trains it) against the GFlash simulator,
with the CaloChallenge 2022 metrics, beside the null test (the simulator against itself).

    python bench/calo_fastsim.py                  # seeds drawn now (printed): 12000 training showers, 8 epochs,
                                                  # 10000 showers a sample; about 3 minutes on 2 idle cores
    python bench/calo_fastsim.py --seeds 11 12 13 14 --training-showers 20000 --epochs 30   # the task's defaults
    python bench/calo_fastsim.py --seeds 11 12 13 14 --load model.pt --app /elsewhere/calo-fastsim
        # a saved model (--save) scored again, here with another copy of the app's code (an earlier version,
        # side by side on the same seeds; its state dict must fit that code's networks)

Seeds: the training showers', the reference sample's, the second simulator sample's (the null test) and the
surrogate's draw. It prints the classifier AUC, the separation power of E_tot/E_inc, KPD x 10^3 with its error
and FPD for the null test and the surrogate, against the goals, then the simulator's and the surrogate's time per
shower on this CPU (no speed-up is claimed: the simulator is itself a parametrisation), the classifier's AUC on
each group of features alone, and the training data's bytes over the model's parameter bytes. The app's code runs
in this process (numpy, scikit-learn and torch, as in the twin's worker).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "calo-fastsim"


def _scores(reference: Any, other: Any, seed: int) -> dict[str, float]:
    from calo_fastsim.features import kernel_features
    from calo_fastsim.metrics import classifier_auc, fpd, kpd, separation_power

    distance = kpd(kernel_features(reference), kernel_features(other), batch_size=5000, seed=seed)
    return {
        "auc": classifier_auc(reference.classifier_inputs(), other.classifier_inputs(), seed=seed, held_out=0.5),
        "sep": separation_power(reference.e_ratio, other.e_ratio),
        "kpd": 1e3 * distance.value,
        "kpd_err": 1e3 * distance.error,
        "fpd": fpd(kernel_features(reference), kernel_features(other)),
    }


def _group_aucs(reference: Any, other: Any, seed: int) -> dict[str, float]:
    """The classifier on one group of features at a time (each with log E_inc): where a sample is told apart."""
    from calo_fastsim.metrics import classifier_auc

    def groups(f: Any) -> dict[str, np.ndarray]:
        log_e = np.log10(f.e_inc)[:, None]
        return {
            "E_tot/E_inc": np.hstack([log_e, f.e_ratio[:, None]]),
            "log layer energies": np.hstack([log_e, np.log10(f.e_layer + 1e-8)]),
            "centres": np.hstack([log_e, f.centre_x, f.centre_y]),
            "widths": np.hstack([log_e, f.width_x, f.width_y]),
            "sparsities": np.hstack([log_e, f.sparsity]),
        }

    ref, gen = groups(reference), groups(other)
    return {name: classifier_auc(ref[name], gen[name], seed=seed, held_out=0.5) for name in ref}


def _ms_per_shower(draw: Any, batches: int, batch: int) -> float:
    draw(batch)  # warm
    began = time.perf_counter()
    for _ in range(batches):
        draw(batch)
    return 1e3 * (time.perf_counter() - began) / (batches * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs=4,
        default=None,
        metavar=("TRAIN", "REF", "NULL", "DRAW"),
        help="default: drawn at run time (printed)",
    )
    parser.add_argument("--showers", type=int, default=10000, help="showers per evaluated sample")
    parser.add_argument("--training-showers", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=8, help="the training task's default is 30")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in training (the task's: 2)")
    parser.add_argument("--save", type=Path, default=None, help="write the trained state dict there")
    parser.add_argument("--load", type=Path, default=None, help="score this saved state dict (no training)")
    parser.add_argument("--app", type=Path, default=APP, help="the app's directory (its calo_fastsim package)")
    args = parser.parse_args()
    if args.seeds is None:  # drawn, not picked: the app's tests use seeds below 1000 and the default 2022
        args.seeds = sorted(random.SystemRandom().sample(range(10_000, 2**31), 4))
        print(f"seeds drawn: {' '.join(map(str, args.seeds))} (--seeds to repeat them)")
    train_seed, ref_seed, null_seed, draw_seed = args.seeds
    sys.path.insert(0, str(args.app))
    import torch
    from calo_fastsim.features import features
    from calo_fastsim.simulator import draw_energies, simulate
    from calo_fastsim.surrogate import calo_surrogate, generate, parameter_bytes

    from twinengine.app import TrainingData
    from twinengine.ml.flavours import PyTorchFlavour

    began = time.perf_counter()
    task = calo_surrogate()
    config = task.config.merged({"epochs": args.epochs, **({"threads": args.threads} if args.threads else {})})
    params = {"training_seed": train_seed, "training_showers": args.training_showers, "held_out_showers": 2000}
    if args.load is not None:
        model = task.build_model(config.params)
        model.load_state_dict(torch.load(args.load))
        model.eval()
        print(f"surrogate loaded from {args.load} (app code from {args.app})")
    else:
        fit = PyTorchFlavour().fit(task, config, TrainingData(parameters=params))
        model = fit.model.eval()
        print(
            f"surrogate trained in {time.perf_counter() - began:.0f} s ({config.epochs} epochs, "
            f"{config.threads} threads, {args.training_showers} showers): held-out E_tot/E_inc separation "
            f"{fit.final['etot_separation']:.4f}, "
            f"KPD {fit.final['kpd']:.2e}"
        )
    if args.save is not None:
        torch.save(model.state_dict(), args.save)
    data_bytes = args.training_showers * (6480 + 1) * 4
    print(
        f"training data {data_bytes / 1e6:.0f} MB / parameters {parameter_bytes(model) / 1e6:.2f} MB "
        f"= {data_bytes / parameter_bytes(model):.0f}"
    )

    reference, other = simulate(args.showers, ref_seed), simulate(args.showers, null_seed)
    drawn = generate(model, other.incident_energies[:, 0], seed=draw_seed)
    ref_f = features(reference)
    null, ours = _scores(ref_f, features(other), ref_seed), _scores(ref_f, features(drawn), ref_seed)

    rng = np.random.default_rng(draw_seed)
    sim_ms = _ms_per_shower(lambda b: simulate(b, int(rng.integers(2**31))), 5, 400)
    torch.set_num_threads(1)
    gen_ms = _ms_per_shower(lambda b: generate(model, draw_energies(b, rng), seed=int(rng.integers(2**31))), 20, 100)
    torch.set_num_threads(2)
    gen2_ms = _ms_per_shower(lambda b: generate(model, draw_energies(b, rng), seed=int(rng.integers(2**31))), 20, 100)

    print(
        f"\nseeds {' '.join(map(str, args.seeds))}, {args.showers} showers a sample; "
        f"{time.perf_counter() - began:.0f} s"
    )
    print(f"  {'metric':<34} {'null (simulator vs simulator)':>30} {'surrogate':>14}   goal")
    rows = [
        ("classifier AUC (high-level)", "auc", "<= 0.75", lambda v: v <= 0.75),
        ("separation power E_tot/E_inc", "sep", "<= 0.01", lambda v: v <= 0.01),
        ("KPD x 10^3", "kpd", "<= 1.0", lambda v: v <= 1.0),
        ("FPD (at this sample size)", "fpd", "-", None),
    ]
    for name, key, goal, met in rows:
        n, s = null[key], ours[key]
        extra = f" +- {null['kpd_err']:.2f}" if key == "kpd" else ""
        extra_s = f" +- {ours['kpd_err']:.2f}" if key == "kpd" else ""
        verdict = "" if met is None else ("met" if met(s) else "MISSED")
        print(f"  {name:<34} {f'{n:.4f}{extra}':>30} {f'{s:.4f}{extra_s}':>14}   {goal:<8} {verdict}")
    aucs = _group_aucs(ref_f, features(drawn), ref_seed)
    print(
        "  classifier AUC by feature group (with log E_inc): "
        + ", ".join(f"{name} {value:.3f}" for name, value in aucs.items())
    )
    print(
        f"  {'time per shower, CPU':<34} {f'simulator {sim_ms:.2f} ms':>30} "
        f"{f'{gen_ms:.2f} ms':>14}   <= 60 ms at batch 100 (1 thread; {gen2_ms:.2f} ms on 2) "
        f"{'met' if gen_ms <= 60 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
