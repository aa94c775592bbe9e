"""GPU-seconds: which GPUs a worker's processes hold (asked of NVML), what a call is charged, and how the
figure reaches a run's usage record. There is no GPU on the machines the suite runs on, so NVML is a stand-in
here (its functions, answering as the driver would); tests/integration/test_gpu_usage.py and
bench/gpu_usage.py check the same path on a real GPU, against nvidia-smi."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace
from typing import Any

import pytest

from twinengine.compute.metering import WORKER_GPU, charge_worker_gpu, start_meter
from twinengine.workers.gpu import GpuHolders
from twinengine.workers.service import GpuCall


class FakeNvml:
    """NVML's functions as ``pynvml`` has them, over ``devices``: for each GPU, the pids holding it."""

    def __init__(self, devices: list[list[int]], *, broken: bool = False) -> None:
        self.devices, self.broken, self.asked = devices, broken, 0

    def nvmlInit(self) -> None:
        if self.broken:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        self.asked += 1
        return [SimpleNamespace(pid=pid, usedGpuMemory=1 << 20) for pid in self.devices[handle]]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[Any]:
        return []


def test_a_worker_holds_the_gpus_any_of_its_processes_has_a_context_on() -> None:
    holders = GpuHolders(FakeNvml([[10, 11], [12], [99]]))
    assert holders.count == 3
    assert holders.held({10}) == 1
    assert holders.held({10, 12}) == 2  # its Python on GPU 0, a rank it started on GPU 1
    assert holders.held({10, 11}) == 1  # two processes on one GPU hold one GPU
    assert holders.held({7}) == 0 and holders.held(set()) == 0


def test_without_nvml_or_a_driver_no_gpu_is_held_and_nothing_is_asked() -> None:
    broken = FakeNvml([[1]], broken=True)
    holders = GpuHolders(broken)
    assert holders.count == 0 and holders.held({1}) == 0 and broken.asked == 0
    assert GpuHolders(None).count == 0


class Held:
    """A worker whose processes hold ``gpus[i]`` GPUs at its i-th look."""

    def __init__(self, *gpus: int) -> None:
        self.gpus = list(gpus)

    def gpus_held(self) -> int:
        return self.gpus.pop(0)


def test_a_call_is_charged_its_seconds_times_the_gpus_held_at_its_start_or_end() -> None:
    made = GpuCall(Held(0, 2))  # a call that put its model on two GPUs
    time.sleep(0.05)
    charged = made.seconds()
    assert 0.1 <= charged < 0.1 + 2 * 0.5  # both GPUs, from the call's start
    assert GpuCall(Held(0, 0)).seconds() == 0.0  # a call on the CPU
    kept = GpuCall(Held(1, 0))  # it let go of its GPU before answering: still held during the call
    time.sleep(0.02)
    assert kept.seconds() >= 0.02


def test_gpu_seconds_charged_to_an_execution_reach_its_reading() -> None:
    meter = start_meter()
    charge_worker_gpu(1.5)
    charge_worker_gpu(0.0)
    charge_worker_gpu(2.0)
    reading = meter.stop()
    assert reading.gpu_seconds == pytest.approx(3.5)
    assert WORKER_GPU in reading.sources
    plain = start_meter().stop()
    assert plain.gpu_seconds == 0.0 and WORKER_GPU not in plain.sources


def test_a_real_worker_on_a_machine_without_gpus_holds_none() -> None:
    from twinengine.workers.process import Worker

    worker = Worker.__new__(Worker)  # only its process is looked at
    worker.process = SimpleNamespace(pid=os.getpid(), poll=lambda: None)  # type: ignore[assignment]
    assert worker.gpus_held() == 0
