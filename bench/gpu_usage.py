"""GPU-seconds as the engine charges a sandboxed app worker's calls, beside the driver's own view of them.

An app's worker (in bubblewrap where it starts here, with the machine's GPU device nodes; else unsandboxed,
as an embedded engine runs it) runs PyTorch on the GPU: a first call puts a context on it (not measured),
then ``--seconds`` of matrix products. The engine charges each call its wall seconds times the GPUs the
worker's processes hold a context on (``workers.service.GpuCall``, from NVML). The reference is
``nvidia-smi``, a separate program asking the driver which processes hold the GPU: it is sampled all through
the call, and the seconds during which it lists the worker's process are summed. Where the driver keeps
per-process accounting (``nvidia-smi -q -d ACCOUNTING`` says Enabled; the bench never changes the setting),
its accounted time of the worker's process is printed too. A worker of another app that never touches CUDA
is charged beside it (expected: 0). The cost of one look at NVML (what each call pays on a GPU host) is
timed as well.

Usage: python bench/gpu_usage.py [--seconds 5] [--size 4096] [--sandbox auto|bwrap|none] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

TARGET = 0.05  # the engine's figure within 5 % of the driver's

APP = '''
import time


def warm():
    import torch

    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    return torch.cuda.get_device_name(0)


def spin(seconds, size):
    import torch

    a = torch.randn(size, size, device="cuda")
    began, products = time.monotonic(), 0
    while time.monotonic() - began < seconds:
        a = (a @ a).clamp_(-1.0, 1.0)
        products += 1
        if products % 16 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return products


def cpu_only(seconds):
    began, n = time.monotonic(), 0
    while time.monotonic() - began < seconds:
        n += sum(range(1000))
    return n
'''


class SmiWatch:
    """``nvidia-smi --query-compute-apps=pid`` sampled in a thread: for each pid, the seconds it was listed
    (each sample counts the time since the one before it)."""

    def __init__(self) -> None:
        self.listed: dict[int, float] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                                 capture_output=True, text=True, check=False).stdout
            now = time.monotonic()
            for line in out.split():
                if line.strip().isdigit():
                    self.listed[int(line)] = self.listed.get(int(line), 0.0) + (now - last)
            last, self.samples = now, self.samples + 1

    def __enter__(self) -> SmiWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def accounted(pids: set[int]) -> float | None:
    """The driver's accounted GPU time (s) of ``pids`` where accounting mode is on, else None."""
    mode = subprocess.run(["nvidia-smi", "-q", "-d", "ACCOUNTING"], capture_output=True, text=True,
                          check=False).stdout
    if "Enabled" not in mode:
        return None
    out = subprocess.run(["nvidia-smi", "--query-accounted-apps=pid,time", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=False).stdout
    total = 0.0
    for line in out.splitlines():
        pid, _, ms = line.partition(",")
        if pid.strip().isdigit() and int(pid) in pids:
            total += float(ms) / 1000.0
    return total


def measure(seconds: float, size: int, sandbox_mode: str = "auto") -> dict[str, Any]:
    from twinengine.workers.cpu import tree_pids
    from twinengine.workers.gpu import gpu_holders
    from twinengine.workers.sandbox import Sandbox, bwrap_works, gpu_devices
    from twinengine.workers.service import Workers

    holders = gpu_holders()
    if not holders.count:
        return {"gpus": 0, "why": "NVML finds no GPU here (or nvidia-ml-py is not installed)"}
    root = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        for name in ("gpuapp", "cpuapp"):
            (root / name / name).mkdir(parents=True)
            (root / name / name / "__init__.py").write_text("")
            (root / name / name / "work.py").write_text(APP)
        sandboxed = sandbox_mode == "bwrap" or (sandbox_mode == "auto" and bwrap_works() is None)
        sandbox = Sandbox("bwrap" if sandboxed else "none", hidden=[], devices=gpu_devices())
        workers = Workers(sandbox=sandbox, scratch_root=root, timeout=600, memory_bytes=0, idle=2)
        gpu_app = workers.for_app("gpuapp", label="gpu bench app", code=root / "gpuapp", env=None)
        cpu_app = workers.for_app("cpuapp", label="cpu bench app", code=root / "cpuapp", env=None)
        try:
            charged: list[float] = []
            device = gpu_app.process("gpuapp.work:warm", {}, gpu=charged.append)
            with gpu_app.lease() as worker:
                pids = tree_pids(worker.process.pid)
            first = charged.pop()
            began = time.monotonic()
            with SmiWatch() as smi:
                products = gpu_app.process("gpuapp.work:spin", {"seconds": seconds, "size": size},
                                           gpu=charged.append)
            wall = time.monotonic() - began
            engine = charged.pop()
            seen = sum(smi.listed.get(pid, 0.0) for pid in pids)
            cpu_charged: list[float] = []
            cpu_app.process("cpuapp.work:cpu_only", {"seconds": 1.0}, gpu=cpu_charged.append)
            looks = 200
            with gpu_app.lease() as worker:
                started = time.perf_counter()
                for _ in range(looks):
                    worker.gpus_held()
                look_ms = (time.perf_counter() - started) / looks * 1e3
            return {"gpus": holders.count, "device": device, "sandbox": "bwrap" if sandboxed else "none",
                    "first_call_gpu_seconds": first, "call_wall_seconds": wall, "engine_gpu_seconds": engine,
                    "smi_seconds": seen, "smi_samples": smi.samples, "accounted_seconds": accounted(pids),
                    "products": products, "cpu_worker_gpu_seconds": cpu_charged[0] if cpu_charged else None,
                    "nvml_look_ms": look_ms}
        finally:
            workers.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the measured GPU call")
    parser.add_argument("--size", type=int, default=4096, help="matrix size of the products")
    parser.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                        help="where the app's worker runs (auto: bubblewrap where it starts here)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    got = measure(args.seconds, args.size, args.sandbox)
    if args.json is not None:
        args.json.write_text(json.dumps(got, indent=2))
    if not got["gpus"]:
        print(f"no GPU: {got['why']}; nothing to measure")
        return
    ratio = got["engine_gpu_seconds"] / got["smi_seconds"] if got["smi_seconds"] else float("nan")
    print(f"{got['gpus']} GPU(s), {got['device']}; app worker sandbox: {got['sandbox']}")
    print(f"  measured call: {got['call_wall_seconds']:.3f} s wall, {got['products']} products of "
          f"{args.size}x{args.size}")
    print(f"  engine's GPU-seconds:        {got['engine_gpu_seconds']:.3f}")
    print(f"  nvidia-smi listed the worker {got['smi_seconds']:.3f} s ({got['smi_samples']} samples)")
    if got["accounted_seconds"] is not None:
        print(f"  driver's accounting:         {got['accounted_seconds']:.3f} s (the worker's whole life)")
    else:
        print("  driver's accounting mode is off (not changed here)")
    within = abs(ratio - 1.0) <= TARGET
    print(f"  engine / nvidia-smi: x{ratio:.3f} (target within {TARGET:.0%}: {'met' if within else 'NOT met'})")
    print(f"  the first call (the context made): {got['first_call_gpu_seconds']:.3f} GPU-seconds charged")
    print(f"  a worker of another app that never touches CUDA: {got['cpu_worker_gpu_seconds']} GPU-seconds")
    print(f"  one look at NVML (each call on a GPU host pays two): {got['nvml_look_ms']:.3f} ms")


if __name__ == "__main__":
    sys.exit(main())
