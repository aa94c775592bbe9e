"""A run's cached results are no way around what its owner may read: before a run reads the node cache, every
collection its graph loads is checked for its owner, and a load a cache hit leaves out is counted as a use.
Without that, a user who may not read a lake dataset got its bytes by running the same graph as its owner
(the ``save_result`` of the owner's run, linked from the cache), and a copy's spent or expired terms were
passed the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from helpers import Engine
from lake_fixtures import uploaded_rain
from twinengine.lake.models import Did
from twinengine.lake.terms import uses_of
from twinengine.workflows.models import RunLog

GRAPH = {"process_graph": {
    "load": {"process_id": "load_collection", "arguments": {"id": "uma.rain", "spatial_extent": None,
                                                            "temporal_extent": None}},
    "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "load"}, "format": "netCDF"},
             "result": True}}}


def _run(engine: Engine, name: str) -> Any:
    return engine.http.post("/openeo/1.2/result", json={"process": GRAPH},
                            headers=engine.headers(engine.token(name, "user")))



def test_another_user_gets_no_cached_result_of_a_collection_it_may_not_read(engine: Engine, tmp_path: Path) -> None:
    uploaded_rain(engine, tmp_path, "uma:rain")
    assert _run(engine, "uma").status_code == 200
    refused = _run(engine, "ola")  # the same graph: its save_result is in the cache, from uma's run
    assert refused.status_code == 400 and refused.json()["code"] == "CollectionNotFound", refused.text[:300]
    assert "uma.rain" in refused.json()["message"] and b"HDF" not in refused.content
    again = _run(engine, "uma")  # the owner still gets its own cached result
    assert again.status_code == 200 and again.content[:4] == b"\x89HDF"


def test_a_cache_hit_is_a_use_of_a_copy_and_refused_once_its_terms_end(engine: Engine, tmp_path: Path) -> None:
    uploaded_rain(engine, tmp_path, "uma:rain")

    def hold(**constraint: Any) -> None:
        terms = {"provider": "did:web:partner.example", "agreement": "urn:uuid:cached", "dataset": "rain",
                 "signed_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
                 "policy": {"permission": [{"action": "use", "constraint": [constraint]}]}}
        with engine.runtime.db.session() as session:
            for did in session.scalars(select(Did).where(Did.scope == "uma", Did.name.like("rain%"))):
                did.meta = {**(did.meta or {}), "dataspace": terms}

    hold(leftOperand="count", operator="lteq", rightOperand="2")
    first, second = _run(engine, "uma"), _run(engine, "uma")  # the second is a cache hit, and a use
    assert first.status_code == 200 and second.status_code == 200 and first.content == second.content
    with engine.runtime.db.session(readonly=True) as session:
        hits = session.scalars(select(RunLog.message).where(RunLog.message.like("cache hit:%"))).all()
        assert len(hits) == 1  # the second run loaded nothing: its result came from the cache
        assert uses_of(session, "urn:uuid:cached") == 2
    third = _run(engine, "uma")
    assert third.status_code == 400 and "count lteq" in third.json()["message"], third.text[:300]

    hold(leftOperand="dateTime", operator="lteq", rightOperand="2026-01-01T00:00:00Z")  # past: the terms ended
    ended = _run(engine, "uma")
    assert ended.status_code == 400 and "dateTime lteq" in ended.json()["message"], ended.text[:300]
