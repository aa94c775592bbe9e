"""The one way a plot of the engine's (CLI, demo, quality reports) ends: written as PNG and freed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_figure"]


def save_figure(fig: Any, path: Path, *, title: str | None = None) -> Path:
    """Give ``fig`` its overall ``title`` (if any), write it to ``path`` as PNG (making its folder) and close it:
    a figure left open keeps its memory for as long as the process runs."""
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
