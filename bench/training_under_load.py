"""A two-thread PyTorch training on a busy machine: OpenMP's default of spinning while it waits against the
passive waiting the engine gives its workers (``OMP_WAIT_POLICY=PASSIVE``, ``workers/sandbox.py``), side by side
in one run, the two taking turns round after round so they see the same load.

Each round starts one training process per policy (a small MLP, ``--steps`` steps of ``--batch``, two intra-op
threads as calo-fastsim's surrogate asks) while ``--hogs`` busy processes hold the cores, then again on the idle
machine. It prints each policy's median wall time and CPU seconds and the ratio default / passive: a thread that
spins on a core another process needs burns that core's time for nothing and is descheduled in turn.

Usage: python bench/training_under_load.py [--rounds 3] [--steps 600] [--batch 64] [--hogs 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time

TRAIN = """
import torch
torch.manual_seed(0)
torch.set_num_threads(2)
net = torch.nn.Sequential(torch.nn.Linear(90, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                          torch.nn.Linear(256, 90))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
x = torch.randn(4096, 90)
for step in range({steps}):
    batch = x[(step * {batch}) % 4096:(step * {batch}) % 4096 + {batch}]
    loss = ((net(batch) - batch) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def _hog() -> None:
    while True:
        pass


def _train(steps: int, batch: int, policy: str | None) -> tuple[float, float]:
    """(wall s, CPU s) of one training process under ``policy`` (None: OpenMP's default)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", TRAIN.format(steps=steps, batch=batch)], env=env, check=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=64, help="calo-fastsim's surrogate trains at 64")
    parser.add_argument("--hogs", type=int, default=3,
                        help="busy processes beside the training (default 3: make test's four workers)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; {args.steps} steps of batch {args.batch} through a 90-256-256-90 MLP, "
          f"2 intra-op threads; "
          f"{args.rounds} rounds, policies taking turns")
    print(f"{'machine':<22} {'policy':<9} {'wall s (median)':>16} {'CPU s (median)':>15}")
    for hogs in (args.hogs, 0):
        procs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(hogs)]
        for proc in procs:
            proc.start()
        try:
            seen: dict[str, list[tuple[float, float]]] = {"default": [], "PASSIVE": []}
            for _ in range(args.rounds):
                for name in seen:
                    seen[name].append(_train(args.steps, args.batch, None if name == "default" else name))
        finally:
            for proc in procs:  # reaped here, so their CPU never lands in a later training's RUSAGE_CHILDREN
                proc.terminate()
                proc.join()
        label = f"{hogs} busy processes" if hogs else "idle"
        walls = {name: statistics.median(w for w, _ in runs) for name, runs in seen.items()}
        cpus = {name: statistics.median(c for _, c in runs) for name, runs in seen.items()}
        for name in seen:
            print(f"{label:<22} {name:<9} {walls[name]:>16.2f} {cpus[name]:>15.2f}")
        print(f"{label:<22} default / passive: wall x{walls['default'] / walls['PASSIVE']:.2f}, "
              f"CPU x{cpus['default'] / cpus['PASSIVE']:.2f}")


if __name__ == "__main__":
    main()
