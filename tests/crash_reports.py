"""Stacks of a test process that crashed (a segfault in a C extension), told at the end of the run.

pytest's faulthandler writes a crashed worker's stacks to stderr the moment it dies, in the middle of the
progress dots, where a long run's log is most often cut. Each xdist worker writes them to a file of its own
instead, and the controller prints what any worker left there, the crashing thread first, after the tests.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO

import pytest

_DIR_VARIABLE = "TWIN_TEST_CRASH_DIR"
_CREATED = "TWIN_TEST_CRASH_DIR_CREATED"  # the folder this run made (one given from outside is kept)
_files: list[IO[str]] = []


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler plugin, whose stderr this replaces
def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:  # the controller, or a run without workers: its stacks go to stderr as pytest sends them
        if _DIR_VARIABLE not in os.environ:
            os.environ[_DIR_VARIABLE] = os.environ[_CREATED] = tempfile.mkdtemp(prefix="twin-test-crashes-")
        return
    folder = os.environ.get(_DIR_VARIABLE)
    if folder and Path(folder).is_dir():
        fh = open(Path(folder) / f"{worker}.txt", "a", encoding="utf-8")  # noqa: SIM115 (open until the process ends)
        _files.append(fh)
        faulthandler.enable(file=fh, all_threads=True)


def crash_report(text: str) -> str:
    """A faulthandler dump with the crashing thread ("Current thread") first after the error, the waiting
    threads after it, and without the list of extension modules."""
    blocks = [block for block in text.strip().split("\n\n") if not block.startswith("Extension modules:")]
    order = {"Fatal Python error": 0, "Current thread": 1}
    return "\n\n".join(sorted(blocks, key=lambda block: next(
        (rank for start, rank in order.items() if block.startswith(start)), 2)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        return
    folder = os.environ.get(_DIR_VARIABLE)
    if not folder or not Path(folder).is_dir():
        return
    for path in sorted(Path(folder).glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            terminalreporter.section(f"test process {path.stem} crashed: its threads' stacks", red=True)
            terminalreporter.write_line(crash_report(text))
    if os.environ.get(_CREATED) == folder:
        shutil.rmtree(folder, ignore_errors=True)
