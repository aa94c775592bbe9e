"""The training configuration an app ships (YAML or dict) and a user may override: pydantic at the edge."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EarlyStopping", "OptimizerConfig", "ScheduleConfig", "TrainingConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimizerConfig(_Strict):
    """The optimizer of a PyTorch model and its settings (a scikit-learn estimator brings its own)."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(default=1e-3, gt=0, le=10)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.0, ge=0, lt=1, description="SGD only.")


class ScheduleConfig(_Strict):
    """Learning-rate schedule, stepped once per epoch."""

    name: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = Field(default=10, ge=1, description="step: epochs between decays.")
    gamma: float = Field(default=0.5, gt=0, le=1, description="step: decay factor.")


class EarlyStopping(_Strict):
    """Stop when ``metric`` has not improved by ``min_delta`` for ``patience`` epochs."""

    metric: str = Field(default="val_loss", min_length=1, max_length=64)
    mode: Literal["min", "max"] = "min"
    patience: int = Field(default=5, ge=1, le=10_000)
    min_delta: float = Field(default=0.0, ge=0)


class TrainingConfig(_Strict):
    """How to train: optimizer, schedule, epochs, batch size, seed, checkpoints, early stopping, metrics."""

    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    epochs: int = Field(default=10, ge=1, le=100_000)
    batch_size: int = Field(default=32, ge=1, le=1_000_000, description="Global batch (split over processes).")
    shuffle: bool = True
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    checkpoint_every: int = Field(default=1, ge=1, description="Epochs between checkpoints.")
    early_stopping: EarlyStopping | None = None
    metrics: list[str] = Field(default_factory=list, description="Custom metrics of the app to compute on "
                                                                  "the validation set (all when empty).")
    log_every: int = Field(default=10, ge=1, description="Steps between training-loss points sent to the registry.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: cuda when available.")
    threads: int | None = Field(default=None, ge=1, le=1024, description="CPU threads of torch's operators "
                                "during the fit (restored after); small models on a busy machine train faster on "
                                "one. None: torch's default.")
    params: dict[str, Any] = Field(default_factory=dict, description="Model hyper-parameters for build_model.")

    @model_validator(mode="after")
    def _sgd_only_momentum(self) -> TrainingConfig:
        if self.optimizer.momentum and self.optimizer.name != "sgd":
            raise ValueError("optimizer.momentum applies to sgd only")
        return self

    def merged(self, overrides: dict[str, Any] | None) -> TrainingConfig:
        """This config with ``overrides`` applied (nested dicts merged), validated again."""
        base = self.model_dump()
        for key, value in (overrides or {}).items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return TrainingConfig.model_validate(base)
