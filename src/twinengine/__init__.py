"""twinengine: a digital twin engine for science.

``twinengine.Client`` is the Python SDK; ``twin`` is the command line; ``twinengine.api.create_app``
builds the HTTP server. ``Client`` is imported on first use, so the command line starts without the SDK's
schemas.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twinengine._version import __version__

# Keras 3 picks its backend once, at its first import, which may be an app's: the engine's is PyTorch (the
# ml extra installs it; TensorFlow is not a dependency) unless whoever starts the process chose another.
os.environ.setdefault("KERAS_BACKEND", "torch")
# MLflow reports its use to its makers' servers unless told not to: an engine holding a research group's models
# sends nothing to a third party unasked, and where outbound traffic is dropped (a cluster's compute nodes) each
# report waits on the network. Whoever starts the process may still turn it on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# OpenMP's threads (PyTorch's intra-op pool) spin while they wait for work by default: on a machine whose cores
# other processes need, they burn those cores' time for nothing (calo-fastsim's trainings beside three busy
# processes: 442 s spinning, 117 s asleep; 68 s and 70 s idle). Waiting asleep costs a wake-up per operation:
# a small network's many tiny steps were 1.25 times slower on an idle machine (bench/training_under_load.py).
# Read once, when OpenMP starts: before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if TYPE_CHECKING:
    from twinengine.client import Client

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from twinengine.client import Client

        return Client
    raise AttributeError(f"module 'twinengine' has no attribute {name!r}")
