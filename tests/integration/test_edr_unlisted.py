"""A file the EDR listing cannot serve (a table without coordinates, as a twin's stream segments are) is left
out of ``/edr/collections`` and said once in the log, not at every listing: the portal's map asks for the
listing on every load, and a log line per file per request buried everything else an operator reads."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from access_data import write_collections
from helpers import run_alone
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


def test_an_engine_stopping_under_its_warm_up_ends_the_listing_without_calling_files_unreadable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A served engine stopped while its EDR warm-up lists the collections closes the readers' pools under it:
    every file then failed ("cannot schedule new futures after shutdown") and was logged as unreadable. The
    warm-up is told to stop, and the listing ends where it is."""
    from twinengine.access.warmup import EdrWarmup
    from twinengine.warmup import WarmupSequence

    settings = Settings(data_dir=tmp_path / "data")
    write_collections(settings.data_dir / "collections")
    runtime = Runtime.from_settings(settings)
    try:
        warmup = EdrWarmup(lambda: runtime.access)
        sequence = WarmupSequence([warmup])
        run_alone(sequence.stop)  # never started: stopping it still tells its warm-ups
        assert warmup.stopping.is_set()
        with caplog.at_level(logging.DEBUG, logger="twinengine.access.listing"):
            warmup._run()
        assert warmup.opened == 0 and not [r for r in caplog.records if "EDR lists no" in r.getMessage()]
        # not stopped: every collection opened
        fresh = EdrWarmup(lambda: runtime.access)
        fresh._run()
        assert fresh.opened >= 1
    finally:
        runtime.close()
