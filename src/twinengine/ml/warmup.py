"""MLflow loaded after start: importing it and opening the embedded registry take about 3 s, which the first
request that lists a twin's models (the portal's flood view asks at once) would otherwise pay. A background
thread does it once the server answers; ``/health`` names it while it runs (``"warming": ["models"]``).
Only where the AI lifecycle is installed and a registry exists (a model was ever registered)."""

from __future__ import annotations

import logging
import threading
import time
from importlib.util import find_spec
from pathlib import Path

__all__ = ["RegistryWarmup"]

log = logging.getLogger(__name__)


class RegistryWarmup:
    """Imports MLflow's client and opens the registry at ``tracking_uri`` once, on a thread of its own (MLflow
    keeps one store per address, so the engine's own client finds it open); ``done`` is set when it ended."""

    name = "models"

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.done = threading.Event()
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._run, name="twin-models-warmup", daemon=True)

    @classmethod
    def wanted(cls, data_dir: Path, tracking_uri: str | None) -> RegistryWarmup | None:
        """A warm-up for this engine's registry, or None where there is nothing to warm."""
        if find_spec("mlflow") is None:
            return None
        if tracking_uri and not tracking_uri.startswith("sqlite:"):
            return cls(tracking_uri)  # a tracking server: the client still takes its import
        database = data_dir / "mlflow.db"
        return cls(tracking_uri or f"sqlite:///{database}") if database.exists() else None

    def start(self) -> RegistryWarmup:
        self._thread.start()
        return self

    @property
    def warming(self) -> bool:
        return not self.done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri).search_registered_models(
                max_results=1)
        except Exception:  # a registry that cannot be read: the first request meets the same error, said there
            log.warning("warming the model registry failed", exc_info=True)
        finally:
            self.seconds = time.perf_counter() - started
            self.done.set()
        log.info("model registry warmed in %.2f s", self.seconds)
