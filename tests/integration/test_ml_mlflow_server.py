"""The registry against a real ``mlflow server`` on loopback (TWIN_MLFLOW_URI), started by a fixture."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from helpers import RIVER_REACH, Engine, admin_token, free_port, stop_process, unavailable
from ml_fixtures import gauge_records, need_torch
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.runtime import Runtime

pytestmark = [pytest.mark.slow, pytest.mark.ci_only]  # ci_only: a real mlflow server



@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    need_torch()
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    if exe is None:
        unavailable("mlflow-server", "the mlflow command is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "mlflow.log").open("w")
    server = subprocess.Popen([str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                               "--artifacts-destination", str(tmp_path / "server-artifacts")],
                              stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_TRACKING_URI": ""})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'mlflow.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop_process(server, timeout=20)
        log.close()


def test_engine_registers_into_a_tracking_server(tmp_path: Path, mlflow_server: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", mlflow_uri=mlflow_server, run_functions=False)
    runtime = Runtime.from_settings(settings)
    try:
        with TestClient(create_app(runtime=runtime)) as http:
            engine = Engine(runtime=runtime, app=http.app, http=http,  # type: ignore[arg-type]
                            admin_token=admin_token(settings))
            engine.as_role("ada", "developer").publish_app(RIVER_REACH)
            uma = engine.as_role("uma", "user")
            uma.create_twin("river-reach@0.1.0", "reach", {"station": "RR-01"})
            uma.streams.append("reach", "gauges", gauge_records(72))
            run = uma.ml.wait("reach", uma.ml.train("reach", "runoff_correction", config={"epochs": 3}).id,
                              timeout=300)
            assert run.status == "succeeded", run.error
            assert not (settings.data_dir / "mlflow.db").exists()  # nothing embedded: all went to the server
    finally:
        runtime.close()

    from mlflow.tracking import MlflowClient

    official = MlflowClient(tracking_uri=mlflow_server)
    version = official.get_model_version_by_alias("reach.runoff_correction", "champion")
    assert version.tags["training_run"] == run.id and version.tags["app"] == "river-reach@0.1.0"
    assert len(official.get_metric_history(version.run_id, "val_loss")) == 3
    local = official.download_artifacts(version.run_id, "model/model.pt", str(tmp_path))
    assert Path(local).stat().st_size > 0
