"""What the staging tests share: a graph reading the lake's rain collection, and an engine keeping run results
in the lake (on ``disk`` unless staging sends them elsewhere)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from helpers import Engine, engine_on
from twinengine.config import Settings
from workflow_data import daily_graph

__all__ = ["GRAPH", "lake_engine"]

GRAPH = json.loads(json.dumps(daily_graph("max", "add", 1)).replace('"id": "rain"', '"id": "wx.rain-2026"'))


@pytest.fixture
def lake_engine(settings: Settings) -> Iterator[Engine]:
    """An engine whose run results are kept in the lake (on ``disk`` unless staging sends them elsewhere)."""
    with engine_on(settings.model_copy(update={"lake_endpoint": "disk"})) as started:
        yield started
