"""``twin demo`` keeps app environments outside its data dir: in the user's cache, or where TWIN_ENVS_DIR says,
so a second demo of an app with ``requires`` (climate-extremes: xclim) reuses the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinengine.demo.runner import APP_CHAPTERS, _shared_envs


def test_the_cache_unless_twin_envs_dir_says_otherwise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TWIN_ENVS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert _shared_envs() == tmp_path / "cache" / "twinengine" / "envs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _shared_envs() == tmp_path / "home" / ".cache" / "twinengine" / "envs"
    monkeypatch.setenv("TWIN_ENVS_DIR", str(tmp_path / "envs"))
    assert _shared_envs() == tmp_path / "envs"


def test_the_climate_app_has_its_own_story() -> None:
    chapters = [c.__name__ for c in APP_CHAPTERS["climate-extremes"]]
    assert chapters == ["publish_app", "extremes"]
    assert "extremes" not in [c.__name__ for c in APP_CHAPTERS["river-reach"]]  # the default demo is unchanged
