"""The river-network chapter of ``twin demo`` runs alone (creating the reaches it misses) and again on the same
data (the links hold already), through the SDK against an engine on a loopback port."""

from __future__ import annotations

from pathlib import Path

from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.chapters import relations, twins
from twinengine.demo.context import DemoContext, DemoOptions
from twinengine.demo.runner import CHAPTERS, PEOPLE, _import_app_package, find_app_folder
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


def test_river_network_runs_alone_and_again(tmp_path: Path) -> None:
    assert CHAPTERS.index(relations.river_network) < len(CHAPTERS) - 1
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "data"))
    token = runtime.start()
    assert token is not None
    said: list[str] = []
    try:
        with InProcessServer(create_app(runtime=runtime)) as server:
            with Client(server.url, token) as admin:
                tokens = {n: admin.create_token(n, r, expires_in="1d").token for n, r in PEOPLE}
            folder = find_app_folder()
            ctx = DemoContext(options=DemoOptions(), runtime=runtime, url=server.url, admin_token=token,
                              tokens=tokens, app_folder=folder, app_package=_import_app_package(folder),
                              say=said.append)
            twins.publish_app(ctx)
            relations.river_network(ctx)
            relations.river_network(ctx)
            downstream = ctx.facts["river_network"]["downstream"]
            assert [(r["name"], r["hops"]) for r in downstream] == [("reach-02", 1), ("reach-03", 2), ("reach-04", 3)]
            assert all(r["level"] is not None for r in downstream)
            assert len(ctx.client("uma").links("reach-01", history=True).items) == 1  # linked once, not twice
            ctx.close()
    finally:
        runtime.close()
    assert sum("created reach-01" in line for line in said) == 1
    assert any("as of just before the links were made: 0 reaches" in line for line in said)
