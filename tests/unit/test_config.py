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
    monkeypatch.setenv("TWIN_EDR_READ_WORKERS", "12")
    assert Settings().port == 9002 and Settings().edr_read_workers == 12
    assert Settings(port=9003).port == 9003


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="port"):
        Settings(data_dir=tmp_path, port=70000)
    with pytest.raises(ValidationError, match="colour"):
        Settings(data_dir=tmp_path, colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="edr_read_workers"):
        Settings(data_dir=tmp_path, edr_read_workers=0)


@pytest.mark.parametrize(("given", "expected"), [
    ("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("15m", timedelta(minutes=15)),
    ("45s", timedelta(seconds=45)), ("2w", timedelta(weeks=2)), ("90", timedelta(seconds=90)),
    (90, timedelta(seconds=90)), ("1.5h", timedelta(minutes=90)), ("PT30S", timedelta(seconds=30)),
])
def test_duration_settings_take_seconds_short_forms_and_iso(tmp_path: Path, given: object,
                                                            expected: timedelta) -> None:
    assert Settings(data_dir=tmp_path, udf_timeout=given).udf_timeout == expected


def test_duration_settings_from_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "twin.toml").write_text('lake_tombstone_grace = "12h"\n')
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TWIN_TOKEN_TTL", "30d")
    settings = Settings()
    assert settings.token_ttl == timedelta(days=30) and settings.lake_tombstone_grace == timedelta(hours=12)


@pytest.mark.parametrize("bad", ["soon", "30 days", "-5m", "12x"])
def test_a_bad_duration_names_the_setting(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(data_dir=tmp_path, workflow_stale_after=bad)
    message = str(caught.value)
    assert "workflow_stale_after" in message and "30d" in message


def test_lake_list_settings_are_comma_separated_in_the_environment(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_LAKE_IMPORT_HOSTS", "hda.example.org, *.Example.NET.")
    monkeypatch.setenv("TWIN_LAKE_FILE_ROOTS", f"{tmp_path / 'a'},{tmp_path / 'b'}")
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.lake_import_hosts == ["hda.example.org", "*.example.net"]
    assert settings.lake_file_root_paths == [tmp_path / "a", tmp_path / "b", (tmp_path / "data" / "lake").resolve()]
    monkeypatch.setenv("TWIN_LAKE_IMPORT_HOSTS", '["stac.example.org"]')
    monkeypatch.delenv("TWIN_LAKE_FILE_ROOTS")
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.lake_import_hosts == ["stac.example.org"]
    assert settings.lake_file_root_paths == [(tmp_path / "data" / "lake").resolve()]
    monkeypatch.delenv("TWIN_LAKE_IMPORT_HOSTS")
    assert Settings(data_dir=tmp_path / "data").lake_import_hosts == []
