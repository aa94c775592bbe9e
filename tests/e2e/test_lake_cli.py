"""``twin lake`` against a live engine whose judge, conveyor and reaper run in the server (as under
``twin serve``): the README's lake tour, JSON output, and clean errors."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import LiveEngine
from twinengine.api import create_app
from twinengine.config import Settings
from twinengine.demo.server import InProcessServer
from twinengine.runtime import Runtime


@pytest.fixture
def lake_live(tmp_path: Path) -> Iterator[LiveEngine]:
    settings = Settings(data_dir=tmp_path / "data", lake_daemons=True)
    runtime = Runtime.from_settings(settings)
    token = runtime.start()
    assert token is not None
    try:
        with InProcessServer(create_app(runtime=runtime)) as server:
            yield LiveEngine(url=server.url, admin_token=token, settings=settings)
    finally:
        runtime.close()


def test_the_lake_tour(lake_live: LiveEngine, tmp_path: Path) -> None:
    live = lake_live
    provider = live.twin_json("token", "create", "--name", "pat", "--role", "provider")["token"]
    user = live.twin_json("token", "create", "--name", "uma", "--role", "user")["token"]
    for name, site in (("site-a", "A"), ("site-b", "B")):
        out = live.twin("lake", "endpoint", "add", name, "--protocol", "file", "--location", str(tmp_path / name),
                        "--attr", f"site={site}", "--attr", "tier=1", "--attr", "type=disk", "--quota", "1G",
                        "--bearer-token", "not-for-your-eyes", token=provider)
        assert name in out and "credential bearer" in out and "not-for-your-eyes" not in out
    listed = live.twin("lake", "endpoint", "list", token=provider)
    assert "site-a" in listed and "not-for-your-eyes" not in listed
    live.twin("lake", "endpoint", "set", "site-b", "--attr", "type=", "--attr", "zone=eu", token=provider)
    assert live.twin_json("lake", "endpoint", "show", "site-b", token=user)["attributes"] == {
        "site": "B", "tier": "1", "zone": "eu"}

    data = (b"level,rain\n" + b"1.2,0.4\n" * 50_000)
    source = tmp_path / "levels.csv"
    source.write_bytes(data)
    live.twin("lake", "dataset", "add", "reach:levels", "--meta", "gauge=RR-01", "--bbox", "7,46,8.5,47",
              "--start", "2026-03-01T00:00:00Z", token=user)
    up = live.twin_json("lake", "upload", str(source), "reach:levels/levels.csv", "--endpoint", "site-a",
                        "--dataset", "reach:levels", "--sha256", hashlib.sha256(data).hexdigest(), token=user)
    assert up["created"] and up["file"]["bytes"] == len(data)
    assert "already there" in live.twin("lake", "upload", str(source), "reach:levels/levels.csv", "--endpoint",
                                        "site-a", token=user)
    bad = live.twin("lake", "upload", str(source), "reach:other.csv", "--endpoint", "site-a", "--adler32",
                    "deadbeef", token=user, expect=1)
    assert "ChecksumMismatch" in bad and "adler32" in bad

    rule = live.twin_json("lake", "rule", "add", "reach:levels", "--copies", "2", "--endpoints", "site=A|site=B",
                          "--wait", token=user)
    assert rule["state"] == "OK" and rule["locks_ok"] == 2
    assert "OK" in live.twin("lake", "rule", "list", token=user)
    shown = live.twin_json("lake", "show", "reach:levels/levels.csv", token=user)
    assert sorted((r["endpoint"], r["state"]) for r in shown["replicas"]) == [
        ("site-a", "AVAILABLE"), ("site-b", "AVAILABLE")]
    assert "DONE" in live.twin("lake", "transfers", token=user)

    target = tmp_path / "back.csv"
    live.twin("lake", "download", "reach:levels/levels.csv", str(target), "--endpoint", "site-b", "--verify",
              token=user)
    assert target.read_bytes() == data

    replica = next(r for r in shown["replicas"] if r["endpoint"] == "site-b")
    (tmp_path / "site-b" / replica["path"]).write_bytes(b"corrupted")
    verify = live.twin("lake", "verify", "reach:levels", token=provider, expect=2)
    assert "1 bad" in verify and "1 repairs queued" in verify
    repaired = live.twin_json("lake", "rule", "show", rule["id"], "--wait", token=user)
    assert repaired["state"] == "OK"
    assert live.twin_json("lake", "verify", "--endpoint", "site-b", token=provider)["bad"] == []
    assert (tmp_path / "site-b" / replica["path"]).read_bytes() == data

    err = live.twin("lake", "rule", "add", "reach:levels", "--copies", "1", "--endpoints", "site=A&(tier=1",
                    token=user, expect=1)
    assert "InvalidExpression" in err and "position 14" in err
    assert "PermissionDenied" in live.twin("lake", "endpoint", "add", "x", "--protocol", "file", "--location",
                                           str(tmp_path / "x"), token=user, expect=1)
    assert "reach:levels" in live.twin("lake", "ls", "--scope", "reach", token=user)

    live.twin("lake", "dataset", "add", "reach:all", "--container", token=user)
    attached = live.twin_json("lake", "dataset", "attach", "reach:all", "reach:levels", token=user)
    assert attached["type"] == "container" and attached["children"] == ["reach:levels"]
    inverted = live.twin("lake", "dataset", "attach", "reach:levels", "reach:all", token=user, expect=1)
    assert "children[0]" in inverted and "a dataset holds files, not containers" in inverted
    missing = live.twin("lake", "dataset", "attach", "reach:all", "reach:nothing", token=user, expect=1)
    assert "DidNotFound" in missing and "reach:nothing" in missing
    assert live.twin_json("lake", "rule", "suspend", rule["id"], token=user)["state"] == "SUSPENDED"
    assert live.twin_json("lake", "rule", "resume", rule["id"], token=user)["state"] in ("REPLICATING", "OK")
    assert live.twin_json("lake", "rule", "show", rule["id"], "--wait", token=user)["state"] == "OK"
    held = live.twin("lake", "endpoint", "remove", "site-b", token=provider, expect=1)
    assert "Conflict" in held and "still holds 1 replica" in held
    live.twin("lake", "endpoint", "add", "spare", "--protocol", "file", "--location", str(tmp_path / "spare"),
              token=provider)
    assert "removed endpoint spare" in live.twin("lake", "endpoint", "remove", "spare", token=provider)
    assert "spare" not in live.twin("lake", "endpoint", "list", token=provider)
    assert f"removed rule {rule['id']}" in live.twin("lake", "rule", "remove", rule["id"], token=user)
    assert live.twin_json("lake", "rule", "list", token=user)["total"] == 0
    again = live.twin("lake", "rule", "remove", rule["id"], token=user, expect=1)
    assert "RuleNotFound" in again and rule["id"] in again
    assert "removed reach:all" in live.twin("lake", "rm", "reach:all", token=user)
    assert "DidNotFound" in live.twin("lake", "show", "reach:all", token=user, expect=1)
    assert live.twin_json("lake", "show", "reach:levels", token=user)["type"] == "dataset"  # members stay
