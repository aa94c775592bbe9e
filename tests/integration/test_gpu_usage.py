"""GPU-seconds on a real GPU: a sandboxed app worker computing with PyTorch on the GPU is charged its call's
seconds times the GPUs it holds, within 5 % of what nvidia-smi (the driver's own tool) saw it hold, and a
worker that never touches CUDA is charged nothing (``bench/gpu_usage.py`` measures the same, with more).

The machines the suite runs on have no GPU: there the test is skipped, saying so. It needs only the worker
layer, PyTorch with CUDA and nvidia-ml-py, so it also runs where the engine's other dependencies are not
installed: ``python -m pytest -c /dev/null --noconftest -p no:cacheprovider tests/integration/test_gpu_usage.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_usage.py"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_gpu_usage", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_gpu_seconds_match_what_the_driver_saw() -> None:
    from twinengine.workers.gpu import gpu_holders

    if not gpu_holders().count:
        pytest.skip("no GPU here (NVML finds none, or nvidia-ml-py is missing): GPU-seconds are checked on a "
                    "machine with one (bench/gpu_usage.py)")
    pytest.importorskip("torch", reason="PyTorch runs the GPU work")
    got = _bench().measure(3.0, 2048)
    assert got["smi_seconds"] > 2.0, got  # nvidia-smi listed the worker through the call
    assert got["engine_gpu_seconds"] == pytest.approx(got["smi_seconds"], rel=0.05), got
    assert got["engine_gpu_seconds"] <= got["call_wall_seconds"] * got["gpus"] + 1e-6, got
    assert got["cpu_worker_gpu_seconds"] == 0.0, got
