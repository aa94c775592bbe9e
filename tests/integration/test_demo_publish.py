"""The demo's first chapter in a data dir an earlier release left: its example app, same version, other code."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helpers import RIVER_REACH, Engine
from twinengine.demo.chapters.twins import publish_app
from twinengine.errors import AppVersionConflict


def test_the_demo_says_how_to_go_on_when_its_data_dir_holds_the_app_from_another_release(
        engine: Engine, tmp_path: Path) -> None:
    earlier = tmp_path / "earlier" / "river-reach"
    shutil.copytree(RIVER_REACH, earlier)
    (earlier / "river_reach" / "functions.py").write_text(
        (earlier / "river_reach" / "functions.py").read_text() + "\n# as an earlier release had it\n")
    ada = engine.as_role("ada", "developer")
    assert ada.publish_app(earlier).created
    said: list[str] = []
    ctx: Any = SimpleNamespace(client=lambda _who: ada, app_folder=RIVER_REACH, runtime=engine.runtime, facts={},
                               summary=[], say=said.append)
    with pytest.raises(AppVersionConflict) as raised:
        publish_app(ctx)
    message = str(raised.value)
    assert "river-reach@0.1.0 is already published with different content" in message
    assert str(engine.runtime.data_dir) in message and "twin demo --data-dir" in message
    assert said == [] and ctx.facts == {}  # the story goes no further
