"""``twinengine.app``: everything an app's code imports, in one typed module.

- ``app_process``: declare a function of the app's package as an openEO process of its namespace.
- ``FunctionContext`` (what a function on arrival gets as ``ctx``; ``FunctionContext.for_tests`` for the app's
  unit tests) and ``StateUpdate``; ``ctx.state`` is a ``TwinState`` whose ``reported`` and ``desired`` are
  ``Properties`` of ``PropertyValue``; reading a property the app does not declare raises ``UnknownProperty``.
- ``TrainingTask``, ``TrainingData`` and the training configuration (``TrainingConfig``, ``OptimizerConfig``,
  ``ScheduleConfig``, ``EarlyStopping``) for a model's entrypoint (PyTorch or scikit-learn, ``docs/ml.md``);
  they load when first named, so importing this module stays light.

App code runs in sandboxed worker processes of its app version (``docs/apps.md``), never in the engine;
what it may do is what these objects offer. The older import paths (``twinengine.workflows.apps``,
``twinengine.ml.trainer``, ``twinengine.ml.config``, ``twinengine.ml.task``) keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinengine.app._context import FunctionContext, Properties, StateUpdate, UnknownProperty
from twinengine.app._process import app_process

if TYPE_CHECKING:
    from twinengine.app.training import TrainingData, TrainingTask
    from twinengine.app.training_config import EarlyStopping, OptimizerConfig, ScheduleConfig, TrainingConfig
    from twinengine.twins.schemas import PropertyValue, TwinState

__all__ = ["EarlyStopping", "FunctionContext", "OptimizerConfig", "Properties", "PropertyValue", "ScheduleConfig",
           "StateUpdate", "TrainingConfig", "TrainingData", "TrainingTask", "TwinState", "UnknownProperty",
           "app_process"]

_LAZY = {"TrainingTask": "twinengine.app.training", "TrainingData": "twinengine.app.training",
         "TrainingConfig": "twinengine.app.training_config", "OptimizerConfig": "twinengine.app.training_config",
         "ScheduleConfig": "twinengine.app.training_config", "EarlyStopping": "twinengine.app.training_config",
         "TwinState": "twinengine.twins.schemas", "PropertyValue": "twinengine.twins.schemas"}


def __getattr__(name: str) -> Any:
    """The training and state names are imported when an app first asks for them."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'twinengine.app' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
