"""The older import path of the training configuration: it lives in ``twinengine.app.training_config``, what
app code imports, below the AI lifecycle that reads it. Kept so apps and stored runs that name it still work."""

from twinengine.app.training_config import EarlyStopping, OptimizerConfig, ScheduleConfig, TrainingConfig

__all__ = ["EarlyStopping", "OptimizerConfig", "ScheduleConfig", "TrainingConfig"]
