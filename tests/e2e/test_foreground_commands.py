"""Commands that run in the foreground until stopped (``twin app run``, ``twin lake daemon``): they serve or
work as they say, and stop cleanly on Ctrl-C or SIGTERM, also when started as a script's background job
(SIGINT ignored and blocked). There, Ctrl-C never reached them, and SIGTERM ended ``twin app run`` without
its cleanup, leaving the throw-away engine's data behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import free_port, need_sandbox, stop_process
from twinengine.cli.main import app as cli_app
from twinengine.client import Client

TWIN = [sys.executable, "-m", "twinengine.cli.main"]


def _as_a_background_job() -> None:
    """What a script's ``&`` or a thread with the signal blocked hands a child: SIGINT ignored and blocked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def start(args: list[str], until: str, **env: str) -> tuple[subprocess.Popen[str], str]:
    """The command as a background job, and what it printed up to the line containing ``until``."""
    process = subprocess.Popen([*TWIN, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "200", **env}, preexec_fn=_as_a_background_job)
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            stop_process(process)
            raise AssertionError(f"twin {' '.join(args)} ended early:\n" + "".join(lines[-40:]))
        lines.append(line)
        if until in line:
            return process, "".join(lines)
    stop_process(process)
    raise AssertionError(f"no {until!r} within 300 s:\n" + "".join(lines[-40:]))


@pytest.mark.slow
@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_app_run_serves_a_throwaway_engine_and_leaves_nothing_behind(tmp_path: Path, stop_with: int) -> None:
    need_sandbox()
    folder = tmp_path / "app"
    made = CliRunner().invoke(cli_app, ["app", "new", "my-reach", "--template", "hybrid-forecast", "--dir",
                                        str(folder)], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = free_port()
    process, printed = start(["app", "run", str(folder), "--port", str(port), "--twin", "mine"],
                             "throw-away data", TMPDIR=str(scratch))
    try:
        found = re.search(r"token:\s+(\S+)", printed)
        assert found is not None, printed
        assert list(scratch.glob("twin-app-*")), "the engine's data is not where TMPDIR says"
        with Client(f"http://127.0.0.1:{port}", found.group(1)) as uma:
            twin = uma.get_twin("mine")
            assert twin.app == "my-reach@" + twin.app_version
        process.send_signal(stop_with)
        assert process.wait(timeout=60) == 0
        assert process.stdout is not None and "stopped" in process.stdout.read()
        assert not list(scratch.glob("twin-app-*")), "the throw-away data was left behind"
    finally:
        stop_process(process)


def test_lake_daemon_stops_on_ctrl_c_when_started_as_a_background_job(tmp_path: Path) -> None:
    process, _printed = start(["lake", "daemon", "all", "--data-dir", str(tmp_path / "data"), "--interval", "0.2"],
                              "Ctrl-C stops")
    try:
        time.sleep(1.0)  # the loops go round a few times
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        stop_process(process)
