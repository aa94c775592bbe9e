"""What every chapter of the demo shares: options, the running engine, clients per person, and results.

A chapter is a function ``(ctx) -> None`` that narrates with ``ctx.say``, shows long work with
``ctx.track``, records machine-readable ``ctx.facts`` and adds rows to ``ctx.summary``. Capabilities
extend ``twin demo`` by adding a chapter to ``runner.CHAPTERS``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twinengine.client import Client
from twinengine.runtime import Runtime

__all__ = ["Advance", "DemoContext", "DemoOptions", "ml_extra_installed", "skipped_without_ml"]


def ml_extra_installed() -> bool:
    """Whether the ``ml`` extra (PyTorch and MLflow) is installed: the chapters that train say so and skip
    without it."""
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("mlflow") is not None

def skipped_without_ml(ctx: DemoContext, chapter: str, item: str, needs: str = "torch, mlflow") -> bool:
    """True, having said so in the story and the summary, when the ``ml`` extra a chapter trains with is
    missing."""
    if ml_extra_installed():
        return False
    ctx.say(f"{chapter} chapter skipped: the ml extra is not installed (pip install -e '.[ml]')")
    ctx.summary.append((item, f"skipped: install the ml extra ({needs})"))
    return True


# advance(n) moves a progress bar by n steps
Advance = Callable[[int], None]


@dataclass
class DemoOptions:
    data_dir: Path | None = None
    hours: float = 72.0
    step_minutes: int = 15
    seed: int = 7
    plot: Path | None = None
    serve: bool = False
    start: datetime = datetime(2026, 3, 1, tzinfo=UTC)
    app: str = "river-reach"  # whose story: a key of runner.APP_CHAPTERS
    lattice_size: int = 4  # lattice-phi4: L of the twin
    epochs: int = 8  # lattice-phi4: epochs of the flow's training (50 steps each)
    tune_trials: int = 3  # lattice-phi4: Optuna trials (one epoch each) over the flow's size before training
    flow_samples: int = 4096  # lattice-phi4: proposals of the flow-based chain
    reference_sweeps: int = 4000  # lattice-phi4: measured sweeps per reference chain (16 chains)
    climate_members: int = 3  # climate-extremes: ensemble members per warming pathway
    climate_years: int = 10  # climate-extremes: scenario years (after 10 baseline years)
    impacts_members: int = 3  # climate-impacts: ensemble members per rain scenario


def _quiet(_text: str) -> None:
    return None


def _no_bar(_description: str, _total: int) -> Advance:
    return lambda _n: None


@dataclass
class DemoContext:
    options: DemoOptions
    runtime: Runtime
    url: str
    admin_token: str
    tokens: dict[str, str]
    app_folder: Path
    app_package: Any
    say: Callable[[str], None] = _quiet
    track: Callable[[str, int], Advance] = _no_bar
    facts: dict[str, Any] = field(default_factory=dict)
    summary: list[tuple[str, str]] = field(default_factory=list)
    _clients: dict[str, Client] = field(default_factory=dict)

    def fail(self, chapter: str, error: str) -> None:
        """A chapter that went on after its part failed (a second engine's trouble need not end the story): said
        as a failure (``✗``, and again after the summary) and kept in ``facts["failed"]``."""
        self.facts.setdefault("failed", {})[chapter] = error
        self.say(f"✗ the {chapter} chapter failed: {error}")

    def client(self, who: str) -> Client:
        """An SDK client acting as ``who`` (admin, ada, uma, gauge-rr01), opened once and reused."""
        if who not in self._clients:
            token = self.admin_token if who == "admin" else self.tokens[who]
            self._clients[who] = Client(self.url, token)
        return self._clients[who]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
