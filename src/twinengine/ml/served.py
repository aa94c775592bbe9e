"""A model version served inside an app's worker: built once from the model folder the engine hands in,
and what ``ctx.model`` and ``predict`` use. Worker side only: importing it imports neither the engine's store
(SQLAlchemy, about 0.8 s of CPU in each fresh worker) nor torch nor MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twinengine.app.training import TrainingTask

__all__ = ["ServedModel", "served_model"]


@dataclass(frozen=True)
class ServedModel:
    """What ``ctx.model`` is when the twin's model has a champion (and what ``predict`` uses): its registry
    version, the network (eval mode) and the app's task; ``predict(inputs)`` runs the app's predict through
    the task's flavour."""

    version: str
    net: Any
    task: TrainingTask
    interval: dict[str, float] | None = None  # the version's calibrated interval (interval_level, _scale, ...)

    def predict(self, inputs: Any) -> Any:
        """The app's predict; a version with several draws per input (a deep ensemble, MC dropout) answers
        their mean, std and members, and its calibrated interval's bounds."""
        from twinengine.ml.flavours import flavour_of

        flavour = flavour_of(self.task)
        if flavour.name == "pytorch":
            from twinengine.ml.uncertainty import draws, each_draw, summary

            if draws(self.task, self.net) > 1:
                outputs = [flavour.predict(self.task, m, inputs) for m in each_draw(self.task, self.net)]
                return summary(outputs, self.interval)
        return flavour.predict(self.task, self.net, inputs)


def served_model(task: TrainingTask, version: str, params: dict[str, Any] | None, folder: bytes,
                 interval: dict[str, float] | None = None) -> ServedModel:
    """Inside an app's worker: a registered version built from the app's task and its model folder (a tar
    the engine handed in unopened), loaded by the task's flavour; ``params`` None: the task's own (a version
    registered without its hyper-parameters)."""
    import tempfile
    from pathlib import Path

    from twinengine.catalog.archive import unpack
    from twinengine.ml.flavours import flavour_of
    from twinengine.ml.task_host import MODEL_BYTES

    with tempfile.TemporaryDirectory(prefix="version-") as tmp:
        unpack(folder, Path(tmp), max_unpacked_bytes=MODEL_BYTES, compressed=False)
        net = flavour_of(task).load(task, dict(task.config.params) if params is None else params, Path(tmp))
    return ServedModel(version=version, net=net, task=task, interval=interval)
