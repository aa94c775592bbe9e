"""Settings: arguments beat TWIN_* env vars, which beat twin.toml in the data dir, which beats defaults."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from twinengine.config import Settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = Settings()
    assert settings.data_dir == tmp_path / "twinengine"
    assert settings.host == "127.0.0.1"
    assert settings.db_url == f"sqlite:///{tmp_path / 'twinengine' / 'twin.db'}"


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "twin.toml").write_text('port = 9001\nhost = "0.0.0.0"\ntoken_ttl = "P7D"\n'
                                        'data_dir = "/elsewhere"\n')
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.port == 9001 and settings.host == "0.0.0.0"
    assert settings.token_ttl == timedelta(days=7)
    assert settings.data_dir == tmp_path  # twin.toml cannot move the folder it lives in
    monkeypatch.setenv("TWIN_PORT", "9002")
    assert Settings().port == 9002
    assert Settings(port=9003).port == 9003


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="port"):
        Settings(data_dir=tmp_path, port=70000)
    with pytest.raises(ValidationError, match="colour"):
        Settings(data_dir=tmp_path, colour="red")  # type: ignore[call-arg]
