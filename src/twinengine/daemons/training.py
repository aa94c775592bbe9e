"""The training loop of the AI lifecycle (``ml.engine.MLEngine``), an elected loop: on start it queues again
the runs a dead process left running, which only a single trainer may do."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.daemons.supervisor import Loop, Scope

if TYPE_CHECKING:
    from twinengine.ml.engine import MLEngine

__all__ = ["NAME", "training_loop"]

NAME = "ml-training"


def training_loop(ml: MLEngine) -> Loop:
    """Claims queued runs and watches the retraining policies; stopping it kills the training workers (their
    runs resume from their checkpoints on the next start)."""
    return Loop(NAME, ml.run_pass, scope=Scope.ELECTED, wait=lambda _stop: ml.wait_for_work(), setup=ml.resume,
                interrupt=ml.halt, grace=10.0)
