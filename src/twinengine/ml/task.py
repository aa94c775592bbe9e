"""The older import path of the training task types: they live in ``twinengine.app.training``, what app code
imports, below the AI lifecycle that runs them. Kept so apps and stored runs that name it still work."""

from twinengine.app.training import EpochReport, FitResult, MetricSink, TrainingData, TrainingTask, task_from

__all__ = ["EpochReport", "FitResult", "MetricSink", "TrainingData", "TrainingTask", "task_from"]
