"""Two ``twin serve`` processes on loopback, each with a data dir and store of its own, through the ``twin offer``
CLI: the provider offers a gauge history of its lake, the consumer finds it in the provider's catalog,
negotiates to FINALIZED and pulls it into its own lake, where the bytes are the provider's (same SHA-256)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import LiveEngine, admin_token, free_port, serve_engine
from twinengine.config import Settings


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[LiveEngine, LiveEngine]]:
    ports = free_port(), free_port()
    engines = []
    with serve_engine(tmp_path / "provider", ports[0], TWIN_DATASPACE_URL=f"http://127.0.0.1:{ports[0]}",
                      TWIN_DATASPACE_PEER_HOSTS="127.0.0.1", TWIN_WARM_ROUTES="false"), \
            serve_engine(tmp_path / "consumer", ports[1], TWIN_DATASPACE_URL=f"http://127.0.0.1:{ports[1]}",
                         TWIN_DATASPACE_PEER_HOSTS="127.0.0.1", TWIN_WARM_ROUTES="false"):
        for name, port in (("provider", ports[0]), ("consumer", ports[1])):
            settings = Settings(data_dir=tmp_path / name)
            engines.append(LiveEngine(url=f"http://127.0.0.1:{port}", admin_token=admin_token(settings),
                                      settings=settings))
        yield engines[0], engines[1]


def test_a_gauge_history_crosses_from_one_engine_to_another(two: tuple[LiveEngine, LiveEngine],
                                                            tmp_path: Path) -> None:
    provider, consumer = two
    for engine in two:
        engine.twin("lake", "endpoint", "add", "site", "--protocol", "file", "--location",
                    str(engine.settings.data_dir / "lake" / "site"))
    levels = tmp_path / "levels.csv"
    levels.write_bytes(b"time,level\n" + os.urandom(64 * 1024).hex().encode())
    provider.twin("lake", "dataset", "add", "reach:gauge-history")
    provider.twin("lake", "upload", str(levels), "reach:gauge-history/levels.csv", "--endpoint", "site",
                  "--dataset", "reach:gauge-history")
    offered = provider.twin_json("offer", "create", "reach:gauge-history", "--title", "Gauge history",
                                 "--purpose", "flood-forecasting", "--count", "3", "--attribution")
    found = consumer.twin_json("offer", "catalog", provider.url)
    assert offered["dataset_id"] in [d["@id"] for d in found["dataset"]]
    done = json.loads(consumer.twin("--json", "offer", "negotiate", provider.url, offered["dataset_id"],
                                    "--purpose", "flood-forecasting", "--land", "remote:gauge-history", "--wait"))
    assert done["state"] == "COMPLETED", done
    assert {f["name"] for f in done["files"]} == {"levels.csv"}
    out = tmp_path / "pulled.csv"
    consumer.twin("lake", "download", "remote:gauge-history/levels.csv", str(out), "--verify")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(levels.read_bytes()).hexdigest()
    negotiated = provider.twin_json("offer", "negotiations", "--role", "provider")
    assert [n["state"] for n in negotiated] == ["FINALIZED"]
    agreement = provider.twin_json("offer", "agreements", "--role", "provider")[0]
    assert agreement["transfers"] == 1 and agreement["policy"]["obligation"] == [{"action": "attribute"}]
    audit = provider.twin_json("audit", "--action", "dataspace", "--limit", "500")["items"]
    events = {(e["action"], (e.get("detail") or {}).get("event")) for e in audit}
    assert ("dataspace.agreement", "finalized") in events and ("dataspace.data", None) in events
