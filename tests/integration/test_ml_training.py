"""The training loop for real: resume after a kill, Optuna with a crashing trial, DDP on 2 gloo processes
against 1 process with the same global batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ml_fixtures import need_torch, task_package

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _torch() -> None:
    need_torch()


def _fit(folder: Path, package: str, entrypoint: str, **overrides: object) -> object:
    from twinengine.ml.tasks import load_task
    from twinengine.ml.trainer import TrainingData, fit

    task = load_task(folder, package, entrypoint)
    return fit(task, task.config.merged(dict(overrides)), TrainingData())


RESUMABLE = """
import sys, time
from pathlib import Path
from twinengine.ml.tasks import load_task
from twinengine.ml.trainer import TrainingData, fit

folder, checkpoint, slow = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "slow"
task = load_task(folder, "tinytask", "tinytask.regression:task")
config = task.config.merged({"epochs": 12})

def on_epoch(report):
    print("epoch", report.epoch, flush=True)
    if slow:
        time.sleep(0.4)

result = fit(task, config, TrainingData(), checkpoint=checkpoint, on_epoch=on_epoch)
print("resumed_from", result.resumed_from, "final", repr(result.final["val_loss"]), flush=True)
"""


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    folder, _package, _entry = task_package(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(RESUMABLE))
    checkpoint = tmp_path / "ckpt" / "last.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, str(script), str(folder), str(checkpoint), "slow"],
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    for line in child.stdout:  # kill it mid-way, after a few epochs were checkpointed
        if line.startswith("epoch 4"):
            break
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert checkpoint.exists()

    resumed = subprocess.run([sys.executable, str(script), str(folder), str(checkpoint), "fast"],
                             capture_output=True, text=True, env=env, check=True).stdout
    fresh = subprocess.run([sys.executable, str(script), str(folder), str(tmp_path / "other.pt"), "fast"],
                           capture_output=True, text=True, env=env, check=True).stdout
    first_epoch = int(resumed.split("epoch ")[1].split()[0])
    assert first_epoch >= 4, resumed  # it did not start over
    resumed_from = int(resumed.split("resumed_from ")[1].split()[0])
    assert resumed_from == first_epoch - 1
    # same seed, restored optimizer/scheduler/RNG state, per-epoch shuffling: the same final loss
    final_resumed = float(resumed.split("final ")[1])
    final_fresh = float(fresh.split("final ")[1])
    assert final_resumed == pytest.approx(final_fresh, rel=1e-5)


def test_optuna_search_survives_a_crashing_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from twinengine.ml.tasks import load_task
    from twinengine.ml.trainer import TrainingData
    from twinengine.ml.tune import parse_space, run_study

    monkeypatch.setenv("TWIN_TEST_CRASH_BUILD", "2")  # the second trial's model cannot be built
    folder, package, entry = task_package(tmp_path)
    task = load_task(folder, package, entry)
    space = parse_space("""
        optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
        params.hidden: {type: int, low: 4, high: 32}
    """)
    seen: list[int] = []
    result = run_study(task, task.config.merged({"epochs": 3}), TrainingData(), space=space, trials=5,
                       storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="crash", on_trial=seen.append)
    assert result.trials == 5 and result.failed == 1 and result.complete + result.pruned == 4
    assert seen == [1, 2, 3, 4, 5]
    assert set(result.best_overrides) == {"optimizer", "params"} and "lr" in result.best_overrides["optimizer"]
    import optuna

    stored = optuna.load_study(study_name="crash", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len(stored.trials) == 5  # the embedded store kept every trial, the crashed one included


DDP_TOLERANCE = 1e-4  # relative; float32 all-reduce sums in another order than one process does


def test_ddp_two_gloo_processes_follow_the_single_process_loss_curve(tmp_path: Path) -> None:
    from twinengine.ml.distributed import DistributedJob, launch
    from twinengine.ml.tasks import load_task
    from twinengine.ml.trainer import FitResult, TrainingData, fit

    folder, package, entry = task_package(tmp_path)
    task = load_task(folder, package, entry)
    config = task.config.merged({"epochs": 4, "batch_size": 32, "shuffle": False, "device": "cpu"})
    single = fit(task, config, TrainingData())
    job = DistributedJob(entrypoint=entry, path=[str(folder)], config=config, data=TrainingData(),
                         out=str(tmp_path / "result.pt"))
    reports: list[tuple[str, object]] = []
    double: FitResult = launch(2, job, on_report=reports.append)
    assert [r[1].epoch for r in reports if r[0] == "epoch"] == [1, 2, 3, 4]  # type: ignore[attr-defined]
    for one, two in zip(single.history, double.history, strict=True):
        for key in ("train_loss", "val_loss", "mae"):
            assert two[key] == pytest.approx(one[key], rel=DDP_TOLERANCE), (key, one, two)
