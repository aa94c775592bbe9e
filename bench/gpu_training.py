"""A PyTorch training run on the GPU through the app's sandboxed worker, against the same loop run bare on that GPU
in this process, side by side in one run: samples per second of each and their ratio (goal: the worker at
>= 0.9x the bare loop).

The worker is the engine's: in bubblewrap where it starts here (else unsandboxed, as an embedded engine runs
it), the machine's NVIDIA device nodes passed in (``sandbox_gpus``), forked from the app version's warm image
of its models (PyTorch imported there once) and trained by the engine's loop (``twinengine.ml.trainer.fit``:
the epochs reported to the engine, validation each epoch), the model sent back at the end. The bare loop is
what one writes by hand: the same model, optimizer, batches and epochs, a validation pass per epoch. Each side
trains once to warm up (the CUDA context, cuDNN's choices), then ``--repeat`` times in turn; the best of each
is compared. Without a GPU (no ``/dev/nvidia*``, or PyTorch sees no CUDA device) it says why and measures
nothing.

Usage: python bench/gpu_training.py [--samples 200000] [--epochs 3] [--batch 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.9

TASK = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset

from twinengine.ml.trainer import TrainingTask

N = {samples}


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 64, generator=g)
    y = x @ torch.linspace(-1, 1, 64).unsqueeze(1) + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


def build(params):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1))


def loss(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def task():
    return TrainingTask(build_model=build, datasets=lambda d: (_data(N, 1), _data(4096, 2)), loss=loss)
'''


def why_no_gpu() -> str | None:
    """None where a GPU can be trained on here, else why not."""
    from importlib.util import find_spec

    from twinengine.workers.sandbox import gpu_devices

    if find_spec("torch") is None:
        return "PyTorch is not installed (the ml extra)"
    if not gpu_devices():
        return "this machine has no NVIDIA device nodes (/dev/nvidia*)"
    import torch

    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} sees no CUDA device (a CPU build, or no driver)"
    return None


class _Quiet:
    """The engine's side of a fit, keeping nothing of what it is told (the bench measures the loop)."""

    def epoch(self, epoch: int, epochs: int, metrics: dict[str, float]) -> bool:
        return False

    def metrics(self, points: list[tuple[str, float, int, int]]) -> None:
        pass

    def checkpoint(self, blob: bytes) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="both sides on the CPU: checks the bench itself where "
                                                          "there is no GPU (its figures say nothing of one)")
    args = parser.parse_args()
    why = None if args.cpu else why_no_gpu()
    if why is not None:
        print(f"skipped: {why}; nothing measured (goal: training through the sandboxed worker >= {GOAL}x the "
              "bare loop on the GPU)")
        return 0
    import torch
    from torch.utils.data import DataLoader

    from twinengine.app.training_config import TrainingConfig
    from twinengine.ml.remote import RemoteTask
    from twinengine.ml.tasks import load_task
    from twinengine.ml.trainer import TrainingData
    from twinengine.workers.images import model_preload
    from twinengine.workers.sandbox import Sandbox, gpu_devices
    from twinengine.workers.service import Workers

    with tempfile.TemporaryDirectory(prefix="twin-bench-gpu-") as tmp:
        root = Path(tmp)
        (root / "benchgpu").mkdir()
        (root / "benchgpu" / "__init__.py").write_text("")
        (root / "benchgpu" / "model.py").write_text(TASK.format(samples=args.samples))
        task = load_task(root, "benchgpu", "benchgpu.model:task")
        where = "CPU" if args.cpu else "GPU"
        config = TrainingConfig(epochs=args.epochs, batch_size=args.batch, device="cpu" if args.cpu else "cuda")
        device = torch.device(config.device)

        def bare() -> float:
            torch.manual_seed(config.seed)
            train, val = task.datasets(TrainingData())
            model = task.build_model({}).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=config.optimizer.lr)
            loader = DataLoader(train, batch_size=config.batch_size, shuffle=True, pin_memory=device.type == "cuda",
                                generator=torch.Generator().manual_seed(config.seed))
            started = time.perf_counter()
            for _epoch in range(config.epochs):
                model.train()
                for x, y in loader:
                    opt.zero_grad(set_to_none=True)
                    loss = task.loss(model, (x.to(device, non_blocking=True), y.to(device, non_blocking=True)))
                    loss.backward()  # type: ignore[no-untyped-call]
                    opt.step()
                model.eval()
                with torch.no_grad():
                    for x, y in DataLoader(val, batch_size=config.batch_size):
                        task.loss(model, (x.to(device), y.to(device)))
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - started

        workers = Workers(sandbox=Sandbox("auto", hidden=[], devices=[] if args.cpu else gpu_devices()),
                          scratch_root=root,
                          timeout=3600, memory_bytes=0, images_after=0)
        app = workers.for_app("bench-gpu", label="bench-gpu", code=root, env=None,
                              preloads={"models": model_preload(["pytorch"])})

        forked: list[bool] = []

        def sandboxed() -> float:
            with app.dedicated(label="bench gpu training") as worker:
                forked.append(worker.image is not None)
                hosted = RemoteTask(worker, timeout=3600)
                hosted.load("benchgpu.model:task", "pytorch", config.model_dump(mode="json"), TrainingData())
                started = time.perf_counter()
                outcome = hosted.fit(config, progress=_Quiet())
                took = time.perf_counter() - started
            assert outcome.model is not None and len(outcome.history) == config.epochs
            return took

        try:
            bare()
            sandboxed()  # warm: the CUDA context, cuDNN's choices, the app's warm image
            times: dict[str, list[float]] = {"bare": [], "worker": []}
            for i in range(args.repeat):
                for name, run in (("bare", bare), ("worker", sandboxed))[:: 1 if i % 2 == 0 else -1]:
                    times[name].append(run())
            mode = workers.sandbox.effective()
        finally:
            workers.close()
    samples = args.samples * args.epochs
    rate = {name: samples / min(values) for name, values in times.items()}
    ratio = rate["worker"] / rate["bare"]
    name = "CPU" if args.cpu else torch.cuda.get_device_name(0)
    print(f"{name}; MLP 64-1024-1024-1, {args.samples} samples, batch {args.batch}, "
          f"{args.epochs} epochs, best of {args.repeat}; worker sandbox: {mode}, "
          + ("forked from the app's warm image" if all(forked[1:]) else "started fresh"))
    met = "met" if ratio >= GOAL else "NOT met"
    print(f"bare loop on the {where}: {rate['bare']:,.0f} samples/s; through the sandboxed worker: "
          f"{rate['worker']:,.0f} samples/s; ratio x{ratio:.3f} (goal >= {GOAL}: {met})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
