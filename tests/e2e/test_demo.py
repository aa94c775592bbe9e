"""``twin demo`` runs the whole story on the embedded default and tells the truth about it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from demo_fixtures import STEPS, DemoRun, demo_copy
from helpers import admin_token, stop_process
from twinengine._version import __version__
from twinengine.cli.main import app as cli_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


@pytest.fixture(scope="module")
def json_demo(tmp_path_factory: pytest.TempPathFactory, demo_run: DemoRun) -> tuple[Path, dict[str, Any]]:
    """The run's ``twin --json demo`` (tests/demo_fixtures.py): a copy of its data dir and its summary (the
    store is checked, then the demo is run again in it)."""
    return demo_copy(demo_run, tmp_path_factory.mktemp("json-demo") / "demo"), demo_run.facts


def test_demo_logs_no_error(demo_run: DemoRun) -> None:
    """What a newcomer reads on the terminal: no ERROR line from a library (a Dask client left connected to
    the compute chapter's cluster once tried to reach it for 20 s after it was stopped)."""
    assert [line for line in demo_run.stderr.splitlines() if " ERROR " in line or "Traceback" in line] == []


def test_demo_json_summary_matches_the_store(json_demo: tuple[Path, dict[str, Any]]) -> None:
    data_dir, summary = json_demo
    assert summary["backend"] == "sqlite" and summary["revisions_written"] == STEPS and summary["steps"] == STEPS
    assert summary["what_if"]["origin_untouched"] is True
    # the synchronous rerun of the forecast was evaluated in a sync process, not in the engine's own
    assert summary["workflow"]["rerun_process"] not in (None, summary["workflow"]["engine_process"])
    # the fleet: reach-04's gauge last reported an hour ago, past river-reach's gap check on level
    assert summary["fleet"]["stale_level"] == ["reach-04"]
    # groups and scopes: ben reads the reach only while in the group; a twins:read token's write is refused
    assert summary["identity"]["reads"] == [False, True, False] and summary["identity"]["scoped_write_refused"]
    operations = summary["operations"]  # a backup taken while the engine served, verified
    assert operations["version"] == __version__ and operations["ready"] == "ready"
    assert operations["rows"] > STEPS and operations["files"] > 0
    plot = Path(summary["plot"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000

    # Reopen the store the demo left behind and check its numbers against what is really there.
    runtime = Runtime.from_settings(Settings(data_dir=data_dir))
    runtime.start()
    try:
        from twinengine.api import create_app

        token = admin_token(runtime.settings)
        with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as admin:
            twin = admin.get_twin(summary["twin"]["name"])
            # + the desired threshold, + the forecast workflow's state writes, + the forecast ensemble's
            written = STEPS + 1 + summary["workflow"]["revisions"] + summary["ensemble"]["revisions"]
            assert twin.head_revision == summary["twin"]["head_revision"] == written
            ensemble = summary["ensemble"]
            assert ensemble["revisions"] == 1 and len(ensemble["member_runs"]) == 16
            assert ensemble["lake_assets"] == [f"results:{ensemble['run']}/ensemble.nc"]  # in the lake like runs'
            assert twin.head_revision > 0 and 0 <= ensemble["probability"] <= 1
            levels = admin.history(twin.name, "level", limit=1000).items
            assert len(levels) == STEPS
            assert max(v.value for v in levels) == summary["peak_level"]
            fork = admin.get_twin(summary["what_if"]["fork"])
            assert fork.origin is not None and fork.origin.twin_name == twin.name
            assert admin.audit(limit=1).total >= summary["audit_events"]
    finally:
        runtime.close()


def _as_a_background_job() -> None:
    """What a script's ``&`` or a thread with the signal blocked hands a child: SIGINT ignored and blocked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


@pytest.mark.timeout(900)  # a whole demo on a loaded slow machine took more than the default 300 s
def test_demo_runs_again_in_its_data_dir_then_serves_until_interrupted(
        json_demo: tuple[Path, dict[str, Any]]) -> None:
    """A second ``twin demo --serve`` in the data dir of a first: it shows its progress and summary, makes a
    twin of its own beside the first's, keeps the portal up, and Ctrl-C stops it, also when it was started with
    SIGINT ignored and blocked. (One run checks all of it: the demo is the suite's most expensive command.)"""
    data_dir, first = json_demo
    process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "demo", "--serve", "--hours", "3",
                                "--data-dir", str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "COLUMNS": "160"}, preexec_fn=_as_a_background_job)
    try:
        lines: list[str] = []
        assert process.stdout is not None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "the demo ended before serving:\n" + "".join(lines[-40:])
            lines.append(line)
            if "until Ctrl-C; sign in as uma" in line:
                break
        printed = "".join(lines)
        for text in ("loaded the engine's libraries in", "gauges reporting", "twin demo: summary",
                     "revisions written", "time travel", "what-if fork", "plot",
                     "the portal answers at http://127.0.0.1:", "`twin demo --serve` keeps it up",
                     "% prediction interval: ±", "model error"):  # the model chapter's interval and summary
            assert text in printed, printed[-3000:]
        assert "chapter failed" not in printed, printed[-3000:]  # a second demo's chapters all end well too
        assert first["twin"]["name"] == "demo-reach"
        assert re.search(r"twin\s+\S\s+demo-reach-2 \(", printed), printed[-3000:]
        assert printed.index("twin demo: summary") < printed.index("until Ctrl-C")  # summary, then serving
        found = re.search(r"serving the portal at (http://127\.0\.0\.1:\d+)/ui/", printed)
        assert found is not None, printed
        url = found.group(1)
        token = process.stdout.readline().strip()
        with Client(url, token) as uma:
            assert uma.me().name == "uma"
        with urllib.request.urlopen(f"{url}/ui/") as page:
            assert page.status == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert "stopped serving" in process.stdout.read()
    finally:
        stop_process(process)


@pytest.mark.parametrize("hours", ["nan", "inf", "0.5", "-3", "9000"])
def test_demo_refuses_hours_out_of_range_naming_the_option(hours: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["demo", "--hours", hours, "--data-dir", str(tmp_path / "demo")])
    assert result.exit_code == 2
    assert "--hours" in result.output and "from 1 to 8760" in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "demo").exists()  # refused before anything was made
