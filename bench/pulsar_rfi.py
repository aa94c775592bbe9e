"""pulsar-rfi's science figures: the twin's flagger (trained as the engine trains it) side by side with
AOFlagger on the same simulated observations and truth mask, over seeds the app was never tuned on.

    python bench/pulsar_rfi.py                     # 8 seeds drawn now (printed), 32768 samples each
    python bench/pulsar_rfi.py --seeds 1000 1001 --samples 16384   # repeat chosen ones

Per seed it prints the cells' F1 of both flaggers, the share of on-pulse cells each flags, the folded S/N
after the twin's flagging over the S/N with the truth mask and over the analytic S/N (the same fold of the
noiseless pulse over the cells kept), and the chunks with a pulse of S/N >= 7 found and the chunks without a
pulse called pulse; then the means against the issue's targets. AOFlagger (``pip install aoflagger``, GPLv3)
is run here and in the app's tests only, never by the engine; without it its column is left out. The app's
code runs in this process (numpy and torch, as in the twin's worker).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

APP = Path(__file__).resolve().parents[1] / "examples" / "apps" / "pulsar-rfi"


def _aoflagger() -> Any:
    try:
        import aoflagger
    except ImportError as exc:
        print(f"AOFlagger is not importable ({exc}); its column is left out (pip install aoflagger)")
        return None
    flagger = aoflagger.AOFlagger()
    strategy = flagger.load_strategy_file(flagger.find_strategy_file(aoflagger.TelescopeId.Parkes))

    def run(data: np.ndarray) -> np.ndarray:
        images = flagger.make_image_set(data.shape[1], data.shape[0], 1)
        images.set_image_buffer(0, np.ascontiguousarray(data, dtype="float32"))
        return np.asarray(strategy.run(images).get_buffer(), dtype=bool)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="default: 8 drawn at run time above the tuning and test seeds (printed)")
    parser.add_argument("--samples", type=int, default=32768)
    args = parser.parse_args()
    if args.seeds is None:  # drawn, not picked: the app was tuned on seeds 1-20 and is tested on 2001-2012
        args.seeds = sorted(random.SystemRandom().sample(range(10_000, 2**31), 8))
        print(f"seeds drawn: {' '.join(map(str, args.seeds))} (--seeds to repeat them)")
    sys.path.insert(0, str(APP))
    from pulsar_rfi.model import f1, rfi_flagger
    from pulsar_rfi.science import chunk_truth, measure, pulse_scores
    from pulsar_rfi.simulator import simulate

    from twinengine.app import TrainingData
    from twinengine.ml.flavours import PyTorchFlavour

    began = time.perf_counter()
    task = rfi_flagger()
    fit = PyTorchFlavour().fit(task, task.config, TrainingData(parameters={"training_seeds": [101, 102, 103, 104]}))
    print(f"flagger trained in {time.perf_counter() - began:.0f} s: held-out cells' F1 {fit.final['cell_f1']:.3f}")
    ours = lambda x: task.predict(fit.model, x)  # noqa: E731
    theirs = _aoflagger()
    print(f"{'seed':>5} {'F1 twin':>8} {'F1 AOF':>7} {'on-pulse twin':>13} {'on-pulse AOF':>12} {'S/N':>6} "
          f"{'/truth':>7} {'/analytic':>9} {'pulses found':>12} {'false':>9}")
    rows = []
    totals = {"pulses": 0, "found": 0, "empty": 0, "false": 0}
    for seed in args.seeds:
        obs = simulate(seed, nsamp=args.samples)
        measured, truth = measure(obs, flagger=ours), measure(obs, truth=True)
        span = measured.flags.shape[1]
        on = (obs.pulse[:, :span] > 0) & ~obs.rfi[:, :span]
        ao = theirs(obs.data)[:, :span] if theirs else None
        scores = pulse_scores(measured, chunk_truth(obs))
        for key, value in scores.items():
            totals[key] += value
        row = {"f1": measured.f1, "ao_f1": f1(ao, obs.rfi[:, :span]) if ao is not None else float("nan"),
               "on": measured.on_pulse_flagged, "ao_on": float(ao[on].mean()) if ao is not None else float("nan"),
               "snr": measured.snr, "to_truth": measured.snr / truth.snr,
               "to_analytic": measured.snr / measured.analytic_snr}
        rows.append(row)
        print(f"{seed:>5} {row['f1']:8.3f} {row['ao_f1']:7.3f} {row['on']:13.4f} {row['ao_on']:12.4f} "
              f"{row['snr']:6.1f} {row['to_truth']:7.3f} {row['to_analytic']:9.3f} "
              f"{scores['found']:>5}/{scores['pulses']:<6} {scores['false']:>3}/{scores['empty']:<5}", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    recall = totals["found"] / max(totals["pulses"], 1)
    fpr = totals["false"] / max(totals["empty"], 1)
    target_f1 = max(0.90, mean["ao_f1"] - 0.02) if mean["ao_f1"] == mean["ao_f1"] else 0.90
    checks = [("cells' F1 (mean)", f"{mean['f1']:.3f} (AOFlagger {mean['ao_f1']:.3f})", f">= {target_f1:.3f}",
               mean["f1"] >= target_f1),
              ("on-pulse cells flagged (mean)", f"{mean['on']:.2%} (AOFlagger {mean['ao_on']:.2%})", "<= 1 %",
               mean["on"] <= 0.01),
              ("on-pulse cells flagged (worst seed)", f"{max(r['on'] for r in rows):.2%}", "<= 1 %",
               max(r["on"] for r in rows) <= 0.01),
              ("folded S/N / S/N with the truth mask (worst)", f"{min(r['to_truth'] for r in rows):.3f}", ">= 0.95",
               min(r["to_truth"] for r in rows) >= 0.95),
              ("folded S/N / analytic S/N (mean)", f"{mean['to_analytic']:.3f}", "0.95 to 1.05",
               0.95 <= mean["to_analytic"] <= 1.05),
              ("pulse recall at S/N >= 7", f"{recall:.3f} ({totals['found']}/{totals['pulses']})", ">= 0.9",
               recall >= 0.9),
              ("pulse false-positive rate", f"{fpr:.2%} ({totals['false']}/{totals['empty']})", "<= 0.18 %",
               fpr <= 0.0018)]
    print(f"\nseeds {' '.join(map(str, args.seeds))}, {args.samples} samples each; "
          f"{time.perf_counter() - began:.0f} s")
    for name, value, target, met in checks:
        print(f"  {name:<46} {value:<32} target {target:<14} {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
