"""End-to-end fixtures: a live engine over real HTTP, and a runner for the ``twin`` CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import browser, portal, site  # noqa: F401  (the portal's browser fixtures)
from helpers import LiveEngine, copy_sqlite
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


@pytest.fixture
def live(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite: Path) -> Iterator[LiveEngine]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("live") / "data")
    copy_sqlite(migrated_sqlite, settings.data_dir / "twin.db")
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    try:
        with InProcessServer(create_app(runtime=runtime)) as server:
            yield LiveEngine(url=server.url, admin_token=token, settings=settings)
    finally:
        runtime.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Name where the browser tests left their screenshots (one per page visited)."""
    from browser import SHOTS_KEY

    shots = config.stash.get(SHOTS_KEY, None)
    if shots is not None:
        terminalreporter.write_line(f"portal screenshots: {shots} ({len(list(shots.glob('*.png')))} pages)")
