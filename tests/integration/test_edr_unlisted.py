"""A file the EDR listing cannot serve (a table without coordinates, as a twin's stream segments are) is left
out of ``/edr/collections`` and said once in the log, not at every listing: the portal's map asks for the
listing on every load, and a log line per file per request buried everything else an operator reads."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from access_data import write_collections
from twinengine.access.listing import PLACEHOLDER, list_collections
from twinengine.auth.principal import SYSTEM
from twinengine.config import Settings
from twinengine.runtime import Runtime


def test_an_unservable_file_is_logged_once_and_the_others_are_listed(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    written = write_collections(settings.data_dir / "collections")
    (settings.data_dir / "collections" / "no-coordinates.csv").write_text("site,level\nA,1.5\nB,2.5\n")
    runtime = Runtime.from_settings(settings)
    try:
        with caplog.at_level(logging.DEBUG, logger="twinengine.access.listing"):
            for _ in range(3):
                listed = {doc["id"] for doc in list_collections(runtime.access, principal=SYSTEM, base=PLACEHOLDER)}
                assert listed >= set(written) and not any("no-coordinates" in cid for cid in listed)
        said = [r for r in caplog.records if "no-coordinates" in r.getMessage()]
        assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    finally:
        runtime.close()
