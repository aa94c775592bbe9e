"""A copy of another participant's data held under a data-space agreement (``lake.terms``): once its terms no
longer permit its use, every surface that reads its bytes refuses it (403 naming the agreement) while its
metadata still reads; terms on a dataset never reach a file someone else attaches to it.

The terms are written into the DIDs' metadata here as the data space writes them when it lands a copy
(``dataspace.dataplane.land``; tests/integration/test_dataspace_engines.py lands one between two engines)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import Engine
from lake_fixtures import uploaded_rain
from twinengine.auth.principal import Principal, Role
from twinengine.errors import PermissionDenied
from twinengine.lake.models import Did
from twinengine.lake.terms import uses_of

UMA, OLA = Principal(name="uma", role=Role.USER), Principal(name="ola", role=Role.USER)
ADMIN = Principal(name="admin", role=Role.ADMIN)


def _held(engine: Engine, pattern: str, *, days: int, signed: datetime, count: int | None = None,
          agreement: str = "urn:uuid:agreement-1") -> None:
    constraints = [{"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": f"P{days}D"}]
    if count is not None:
        constraints.append({"leftOperand": "count", "operator": "lteq", "rightOperand": str(count)})
    terms = {"provider": "did:web:partner.example", "agreement": agreement, "dataset": "gauges",
             "signed_at": signed.isoformat(), "policy": {"permission": [{"action": "use", "constraint": constraints}]}}
    with engine.runtime.db.session() as session:
        for did in session.scalars(select(Did).where(Did.scope == "remote", Did.name.like(pattern))):
            did.meta = {**(did.meta or {}), "dataspace": terms}


def test_an_expired_copy_is_refused_by_downloads_and_collections(engine: Engine, tmp_path: Path) -> None:
    nc, user = uploaded_rain(engine, tmp_path, "remote:rain")
    now = datetime.now(UTC)
    _held(engine, "rain%", days=7, signed=now - timedelta(days=1))
    assert engine.runtime.collections.readable("remote.rain", UMA)
    assert "remote.rain" in engine.runtime.collections.readable_ids(ADMIN)
    assert user.lake.download("remote:rain/rain.nc", tmp_path / "got.nc").read_bytes() == nc.read_bytes()

    _held(engine, "rain%", days=7, signed=now - timedelta(days=8))  # the consumer's clock is past the terms
    with pytest.raises(PermissionDenied, match=r"urn:uuid:agreement-1.*elapsedTime lteq"):
        user.lake.download("remote:rain/rain.nc", tmp_path / "refused.nc")
    assert not engine.runtime.collections.readable("remote.rain", UMA)
    assert "remote.rain" not in engine.runtime.collections.readable_ids(UMA)
    assert "remote.rain" not in engine.runtime.collections.readable_ids(ADMIN)  # admins are held to it too
    with pytest.raises(PermissionDenied, match="urn:uuid:agreement-1"):
        engine.runtime.collections.require_readable("remote.rain", UMA)
    assert user.lake.get("remote:rain/rain.nc").meta["dataspace"]["agreement"] == "urn:uuid:agreement-1"
    # someone who may not read it learns nothing of the terms: not there, as before
    with pytest.raises(Exception, match="no collection") as hidden:
        engine.runtime.collections.require_readable("remote.rain", OLA)
    assert "agreement" not in str(hidden.value)


def test_terms_on_a_dataset_do_not_reach_a_file_attached_to_it(engine: Engine, tmp_path: Path) -> None:
    """Only a DID's own metadata counts: a user cannot hold another's file under terms by attaching it."""
    user = engine.as_role("uma", "user")
    engine.as_role("pat", "provider").lake.add_endpoint("disk", "file", str(tmp_path / "disk"))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine, not the agreement's")
    user.lake.add_dataset("remote:expired")
    user.lake.upload(notes, "mine:notes.txt", endpoint="disk", dataset="remote:expired")
    _held(engine, "expired", days=1, signed=datetime.now(UTC) - timedelta(days=30))
    assert user.lake.download("mine:notes.txt", tmp_path / "got.txt").read_bytes() == notes.read_bytes()


def test_a_count_of_three_is_not_lost_by_copying(engine: Engine, tmp_path: Path) -> None:
    """The copy's uses on this engine are counted per agreement (a download, an EDR query, a run's load each
    one) and refused past the agreement's ``count``; a refused use is not counted; checks and metadata are
    no use."""
    nc, user = uploaded_rain(engine, tmp_path, "remote:rain")
    _held(engine, "rain%", days=7, signed=datetime.now(UTC) - timedelta(days=1), count=3)
    token = engine.token("uma", "user")
    before = user.lake.get("remote:rain/rain.nc").terms
    assert before is not None and (before.uses, before.usable, before.refusal) == (0, True, None)
    assert user.lake.download("remote:rain/rain.nc", tmp_path / "1.nc").read_bytes() == nc.read_bytes()  # 1
    for wrong in ("coords=POINT(7.5 46.5)&parameter-name=nope", "coords=POINT(700 46.5)", "coords=nonsense"):
        bad = engine.http.get(f"/edr/collections/remote.rain/position?{wrong}", headers=engine.headers(token))
        assert bad.status_code == 400, (wrong, bad.text)  # refused for its own parameters: no use of the copy
    with engine.runtime.db.session(readonly=True) as session:
        assert uses_of(session, "urn:uuid:agreement-1") == 1
    query = engine.http.get("/edr/collections/remote.rain/position?coords=POINT(7.5 46.5)",
                            headers=engine.headers(token))
    assert query.status_code == 200, query.text  # 2
    for _ in range(3):  # checks of readability, listings and the metadata are no use
        assert engine.runtime.collections.readable("remote.rain", UMA)
        assert "remote.rain" in engine.runtime.collections.readable_ids(UMA)
        assert user.lake.get("remote:rain/rain.nc").meta["dataspace"]["agreement"] == "urn:uuid:agreement-1"
    graph = {"process_graph": {
        "load": {"process_id": "load_collection", "arguments": {"id": "remote.rain", "spatial_extent": None,
                                                                "temporal_extent": None}},
        "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "load"}, "format": "netCDF"},
                 "result": True}}}
    run = engine.http.post("/openeo/1.2/result", json={"process": graph}, headers=engine.headers(token))
    assert run.status_code == 200, run.text[:400]  # 3
    with engine.runtime.db.session(readonly=True) as session:
        assert uses_of(session, "urn:uuid:agreement-1") == 3
    held = user.lake.get("remote:rain/rain.nc").terms  # what its holder reads: the uses, and no more to come
    assert held is not None and (held.agreement, held.uses, held.usable) == ("urn:uuid:agreement-1", 3, False)
    assert held.refusal is not None and 'count lteq "3"' in held.refusal
    listed = engine.http.get("/api/v1/lake/dids", params={"scope": "remote"}, headers=engine.headers(token)).json()
    in_list = {item["did"]: item["terms"] for item in listed["items"]}  # the list says it too, with its reason
    assert in_list["remote:rain/rain.nc"] == held.model_dump(mode="json"), in_list

    with pytest.raises(PermissionDenied, match=r"urn:uuid:agreement-1.*count lteq \"3\""):
        user.lake.download("remote:rain/rain.nc", tmp_path / "4.nc")
    again = engine.http.post("/openeo/1.2/result", json={"process": graph}, headers=engine.headers(token))
    # a failed synchronous run answers 400 with the error of its node (openEO), here the copy's terms
    assert again.status_code == 400 and again.json()["code"] == "PermissionsInsufficient", again.text[:400]
    assert "count lteq" in again.json()["message"]
    refused = engine.http.get("/edr/collections/remote.rain/position?coords=POINT(7.5 46.5)",
                              headers=engine.headers(token))
    assert refused.status_code in (403, 404), refused.text
    assert not engine.runtime.collections.readable("remote.rain", UMA)
    assert "remote.rain" not in engine.runtime.collections.readable_ids(ADMIN)  # admins are held to it too
    with pytest.raises(PermissionDenied, match="count lteq \"3\""):
        engine.runtime.collections.require_readable("remote.rain", UMA)
    with engine.runtime.db.session(readonly=True) as session:
        assert uses_of(session, "urn:uuid:agreement-1") == 3  # the refused uses were not counted
    assert user.lake.get("remote:rain/rain.nc").meta["dataspace"]["agreement"] == "urn:uuid:agreement-1"


@pytest.mark.every_store
def test_uses_at_once_never_pass_the_count(engine: Engine, tmp_path: Path) -> None:
    """Eight downloads at once of a copy under ``count lteq 3``: exactly three are served (each use is judged
    with the count it makes, in one statement that waits for the others on PostgreSQL)."""
    nc, user = uploaded_rain(engine, tmp_path, "remote:rain")
    _held(engine, "rain%", days=7, signed=datetime.now(UTC) - timedelta(days=1), count=3,
          agreement="urn:uuid:agreement-at-once")
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def download(i: int) -> None:
        start.wait()
        try:
            got = user.lake.download("remote:rain/rain.nc", tmp_path / f"at-once-{i}.nc")
            outcomes.append("served" if got.read_bytes() == nc.read_bytes() else "corrupt")
        except PermissionDenied as error:
            outcomes.append("refused" if "count lteq \"3\"" in error.message else f"other: {error.message}")
        except Exception as error:  # said in the assertion below
            outcomes.append(f"error: {error!r}")

    threads = [threading.Thread(target=download, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused"] * 5 + ["served"] * 3
    with engine.runtime.db.session(readonly=True) as session:
        assert uses_of(session, "urn:uuid:agreement-at-once") == 3

