"""MLflow loaded after start: importing it and opening the embedded registry take about 3 s, which the first
request that lists a twin's models (the portal's flood view asks at once) would otherwise pay. A background
thread does it once the server answers (``twinengine.warmup``; ``/health``: ``"warming": ["models"]``).
Only where the AI lifecycle is installed and a registry exists (a model was ever registered)."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from twinengine.warmup import Warmup

__all__ = ["RegistryWarmup"]


class RegistryWarmup(Warmup):
    """Imports MLflow's client and opens the registry at ``tracking_uri`` once (MLflow keeps one store per
    address, so the engine's own client finds it open)."""

    name = "models"

    def __init__(self, tracking_uri: str) -> None:
        super().__init__()
        self.tracking_uri = tracking_uri

    @classmethod
    def wanted(cls, data_dir: Path, tracking_uri: str | None) -> RegistryWarmup | None:
        """A warm-up for this engine's registry, or None where there is nothing to warm."""
        if find_spec("mlflow") is None:
            return None
        if tracking_uri and not tracking_uri.startswith("sqlite:"):
            return cls(tracking_uri)  # a tracking server: the client still takes its import
        database = data_dir / "mlflow.db"
        return cls(tracking_uri or f"sqlite:///{database}") if database.exists() else None

    def warm(self) -> str:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri).search_registered_models(
            max_results=1)
        return f"registry at {self.tracking_uri.split('://')[0]}"
