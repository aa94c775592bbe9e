"""End-to-end fixtures: a live engine over real HTTP, and a runner for the ``twin`` CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers import LiveEngine
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


@pytest.fixture
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEngine]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("live") / "data")
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    try:
        with InProcessServer(create_app(runtime=runtime)) as server:
            yield LiveEngine(url=server.url, admin_token=token, settings=settings)
    finally:
        runtime.close()
