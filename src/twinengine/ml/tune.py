"""Hyper-parameter search with Optuna: a search space in YAML, pruning on the validation curve, parallel trials,
storage in the engine's PostgreSQL or an embedded SQLite file; a crashed trial is recorded and the search goes on.

Space (YAML or dict), keys are dotted paths into TrainingConfig::

    optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    params.hidden: {type: int, low: 8, high: 64}
    optimizer.name: {type: categorical, choices: [adam, sgd]}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import optuna
import yaml
from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from twinengine.app.training import EpochReport, TrainingData, TrainingTask
from twinengine.app.training_config import TrainingConfig
from twinengine.ml.flavours import flavour_of

__all__ = ["Dimension", "SearchSpace", "StudyResult", "Trainer", "parse_space", "run_study", "search"]


class Dimension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Dimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs choices")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"a {self.type} dimension needs low <= high")
        return self


class SearchSpace(RootModel[dict[str, Dimension]]):
    root: dict[str, Dimension] = Field(min_length=1)


def parse_space(source: str | dict[str, Any]) -> SearchSpace:
    """A space from YAML text or a dict (raises pydantic's ValidationError naming the dimension)."""
    data = yaml.safe_load(source) if isinstance(source, str) else source
    return SearchSpace.model_validate(data)


def _set(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[leaf] = value


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for path, dim in space.root.items():
        if dim.type == "float":
            value: Any = trial.suggest_float(path, float(dim.low or 0), float(dim.high or 0), log=dim.log)
        elif dim.type == "int":
            value = trial.suggest_int(path, int(dim.low or 0), int(dim.high or 0), log=dim.log)
        else:
            value = trial.suggest_categorical(path, dim.choices or [])
        _set(overrides, path, value)
    return overrides


@dataclass
class StudyResult:
    best_overrides: dict[str, Any]
    best_value: float
    trials: int
    complete: int
    pruned: int
    failed: int


# Trains under a config, calling ``report(epoch, metrics)`` after each epoch (True: prune, stop at the end of
# this epoch); returns the final metrics, or None when it stopped because it was told to.
Trainer = Callable[[TrainingConfig, Callable[[int, dict[str, float]], bool]], dict[str, float] | None]


def search(train: Trainer, base: TrainingConfig, *, space: SearchSpace, trials: int, storage: str | None,
           study_name: str, metric: str = "val_loss", direction: Literal["minimize", "maximize"] = "minimize",
           n_jobs: int = 1, on_trial: Callable[[int], None] | None = None) -> StudyResult:
    """Search ``space`` for ``trials`` trials with ``train`` (in this process or in an app's workers); each
    trial trains without registering anything. A trial that raises is recorded as failed and the search
    goes on."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The sampler draws from the training config's seed: a search of one trial at a time proposes the same trials
    # again (a rerun of a tuning, crates.rerun); trials at once finish in any order, which the sampler then sees.
    study = optuna.create_study(study_name=study_name, storage=storage, direction=direction, load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=base.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    finished = [0]

    def objective(trial: optuna.Trial) -> float:
        def report(epoch: int, metrics: dict[str, float]) -> bool:
            value = metrics.get(metric)
            if value is None:
                return False
            trial.report(value, epoch)
            return bool(trial.should_prune())

        final = train(base.merged(suggest(trial, space)), report)
        if final is None:
            raise optuna.TrialPruned()
        if metric not in final:
            raise ValueError(f"metric {metric!r} is not computed (have {sorted(final)})")
        return float(final[metric])

    def counted(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        finished[0] += 1
        if on_trial is not None:
            on_trial(finished[0])

    study.optimize(objective, n_trials=trials, n_jobs=n_jobs, catch=(Exception,), callbacks=[counted])
    states = [t.state for t in study.trials]
    complete = states.count(optuna.trial.TrialState.COMPLETE)
    if complete == 0:
        raise RuntimeError(f"every one of the {len(states)} trials failed or was pruned")
    best: dict[str, Any] = {}
    for path, value in study.best_trial.params.items():
        _set(best, path, value)
    return StudyResult(best_overrides=best, best_value=float(study.best_value), trials=len(states), complete=complete,
                       pruned=states.count(optuna.trial.TrialState.PRUNED),
                       failed=states.count(optuna.trial.TrialState.FAIL))


def run_study(task: TrainingTask, base: TrainingConfig, data: TrainingData, *, space: SearchSpace, trials: int,
              storage: str | None, study_name: str, metric: str = "val_loss",
              direction: Literal["minimize", "maximize"] = "minimize",
              n_jobs: int = 1, on_trial: Callable[[int], None] | None = None) -> StudyResult:
    """:func:`search` with every trial trained in this process (a developer's own task)."""

    def train(config: TrainingConfig, report: Callable[[int, dict[str, float]], bool]) -> dict[str, float] | None:
        stop = [False]

        def on_epoch(epoch: EpochReport) -> None:
            stop[0] = stop[0] or report(epoch.epoch, epoch.metrics)

        result = flavour_of(task).fit(task, config, data, on_epoch=on_epoch, should_stop=lambda: stop[0])
        return None if stop[0] else result.final

    return search(train, base, space=space, trials=trials, storage=storage, study_name=study_name, metric=metric,
                  direction=direction, n_jobs=n_jobs, on_trial=on_trial)
