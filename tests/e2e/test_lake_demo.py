"""``twin demo``'s lake chapters: two copies of the twin's data on two endpoints, found again through STAC."""

from __future__ import annotations

import hashlib

from demo_fixtures import DemoRun


def test_demo_keeps_two_verified_copies_and_finds_them_through_stac(demo_run: DemoRun) -> None:
    data_dir = demo_run.data_dir  # read only
    lake = demo_run.facts["lake"]
    assert lake["rule_state"] == "OK" and lake["locks_ok"] == 4
    assert len(lake["files"]) == 2
    for did, info in lake["files"].items():
        assert info["replicas"] == ["site-a", "site-b"], did
        copies = [p for p in (data_dir / "lake").rglob(did.split("/")[-1]) if ".incoming" not in p.parts]
        assert len(copies) == 2
        assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in copies} == {info["sha256"]}
    assert {row["asset"].rsplit(".", 1)[-1] for row in lake["stac_items"]} == {"csv", "nc"}
    assert all(row["alternates"] == ["site-b"] and row["checksum"].startswith("1220") for row in lake["stac_items"])
    assert [row["cube"] for row in sorted(lake["stac_items"], key=lambda r: r["asset"])] == [False, True]
    assert any(cid.endswith("-rain") for cid in lake["collection_ids"])  # workflows can load_collection it
