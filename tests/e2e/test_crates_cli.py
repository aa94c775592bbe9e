"""``twin runs crate`` and ``twin runs rerun`` through the CLI against a live engine: a twin's forecast packed as
a crate (no token, no secret, no data-dir path in it), run again from the store and from the crate (identical),
and what is no run or no crate refused with the reason."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from helpers import RIVER_REACH, LiveEngine
from workflow_data import rain_cube, write_collection

JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def test_a_forecast_travels_as_a_crate_and_runs_again_identical(live: LiveEngine, tmp_path: Path) -> None:
    with live.client() as admin:
        dev = admin.create_token("ada", "developer").token
        uma = admin.create_token("uma", "user").token
    live.twin("app", "publish", str(RIVER_REACH), token=dev)
    ds = rain_cube(days=1)
    ds["rain"].values[:] = 3.0
    write_collection(live.settings.data_dir / "collections", "rain-forecast", ds)
    live.twin("create", "river-reach@0.1.0", "--name", "crated", "--param", "station=RR-01", token=uma)
    run = live.twin_json("run", "crated", "forecast", "--param", "alert_level=0.3", "--wait", token=uma)
    assert run["status"] == "finished"

    target = tmp_path / "forecast.crate.zip"
    wrote = live.twin_json("runs", "crate", run["id"], "--to", str(target), token=uma)
    assert wrote["bytes"] == target.stat().st_size > 0
    data = target.read_bytes()
    with zipfile.ZipFile(target) as crate:
        names = set(crate.namelist())
        document = json.loads(crate.read("ro-crate-metadata.json"))
    assert {"ro-crate-metadata.json", "README.md", "process-graph.json", "twinengine-run.json",
            "outputs/result.json"} <= names
    entities = {e["@id"]: e for e in document["@graph"]}
    inputs = [e for e in entities.values() if e.get("identifier") == "rain-forecast"]
    assert inputs and len(inputs[0]["sha256"]) == 64  # the collection: a reference with its checksum, not copied
    assert not any(n.endswith((".nc", ".zarr")) for n in names)
    # hostile: nothing of the engine's secrets, the caller's token or where the engine keeps its data
    assert str(live.settings.data_dir).encode() not in data and b"/data/" not in data
    assert uma.encode() not in data and live.admin_token.encode() not in data and not JWT.search(data)
    assert b"BEGIN" not in data and b"secret" not in data.lower()

    again = live.twin_json("runs", "rerun", run["id"], token=uma)
    assert again["verdict"] == "identical", again
    assert again["outputs"] == [{"name": "result.json", "verdict": "identical", "original_sha256": run["assets"][0][
        "sha256"], "rerun_sha256": run["assets"][0]["sha256"], "largest_difference": None, "why": None}]
    from_crate = live.twin_json("runs", "rerun", str(target), token=uma)
    assert from_crate["verdict"] == "identical" and from_crate["original"] == run["id"]
    shown = live.twin("runs", "rerun", str(target), token=uma)
    assert "identical" in shown and "result.json" in shown

    missing = live.twin("runs", "crate", "run-0000000000000000", token=uma, expect=1)
    assert "RunNotFound" in missing
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"PK not really")
    refused = live.twin("runs", "rerun", str(bogus), token=uma, expect=1)
    assert "crate: not a zip file" in refused
