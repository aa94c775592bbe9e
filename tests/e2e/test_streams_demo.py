"""The demo's streams chapter: live gauges over HTTP (and MQTT when a broker is configured) become state
through the app's function, and the summary's numbers match the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from demo_fixtures import DemoRun, demo_copy
from helpers import admin_token
from streams_fixtures import require_mqtt
from twinengine.api import create_app
from twinengine.cli.main import app as cli_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


def run_demo(data_dir: Path, env: dict[str, str] | None = None) -> dict:
    result = CliRunner().invoke(cli_app, ["--json", "demo", "--hours", "6", "--data-dir", str(data_dir)],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    facts: dict = json.loads(result.output)
    return facts


def check_store(data_dir: Path, facts: dict, *, records: int, bad: int = 0) -> None:
    """The stream holds ``records`` readings, and the one the data space chapter sends later to show its live
    offer; each but the ``bad`` ones (refused by the app's quality checks) wrote one revision of the twin, after
    its creation."""
    streams, live = facts["streams"], facts.get("dataspace", {}).get("stream", {})
    later = 1 if live.get("newest") else 0
    runtime = Runtime.from_settings(Settings(data_dir=data_dir))
    runtime.start()
    try:
        token = admin_token(runtime.settings)
        with InProcessServer(create_app(runtime=runtime)) as server, Client(server.url, token) as admin:
            assert admin.streams.read(streams["twin"], "gauges").end_offset == streams["records"] + later
            assert streams["records"] == records
            # the readings and the creation by then; later chapters write more (assimilation's analyses)
            assert admin.get_twin(streams["twin"]).head_revision >= streams["head_revision"] == records - bad + 1
            level = admin.get_state(streams["twin"]).reported["level"].value
            assert level == (live["provider_level"] if later else streams["level"])
    finally:
        runtime.close()


def test_demo_streams_gauges_over_http(demo_run: DemoRun, tmp_path: Path) -> None:
    facts = demo_run.facts["streams"]  # the run's one demo, without a broker: over HTTP
    quality = demo_run.facts["quality"]  # the gauge's faults: the readings its checks find bad reach no function
    assert quality["twin"] == facts["twin"] and quality["records"] == facts["records"] and quality["bad"] >= 1
    assert facts["transport"] == "HTTP" and facts["function_offset"] == facts["records"]
    assert facts["function_calls"] == facts["records"] - quality["bad"]
    assert facts["ingest_rate"] > 0
    assert Path(facts["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = facts["lake"]  # closed segments were compacted, registered in the lake and found through STAC
    assert history["segments"] == len(history["datasets"]) >= 1 and 0 < history["records"] < facts["records"]
    check_store(demo_copy(demo_run, tmp_path / "d"), demo_run.facts, records=facts["records"], bad=quality["bad"])


@pytest.mark.slow
@pytest.mark.ci_only  # a whole second demo, over the real broker; locally the shared run covers it over HTTP
def test_demo_streams_gauges_over_mqtt(tmp_path: Path) -> None:
    url = require_mqtt()
    facts = run_demo(tmp_path / "d", env={"TWIN_MQTT_URL": url})
    assert facts["streams"]["transport"] == "MQTT" and facts["streams"]["function_offset"] == 24
    check_store(tmp_path / "d", facts, records=24)
