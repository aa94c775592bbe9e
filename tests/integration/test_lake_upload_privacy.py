"""An upload tells nothing of a DID its caller may not read: the same bytes, other bytes, a dataset's name,
another endpoint all get one answer (409 ``DidConflict``, "taken"), before a byte is read, and nothing of
the DID changes. ``uma`` owns the files; ``xb1`` has no grant on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from helpers import Engine
from twinengine.auth.principal import SYSTEM, Principal, Role
from twinengine.errors import DidConflict
from twinengine.lake.checksums import Hasher
from twinengine.lake.endpoints import add_endpoint
from twinengine.lake.models import Did, Replica
from twinengine.lake.schemas import EndpointCreate
from twinengine.lake.uploads import register_replica

UPLOADS = "/api/v1/lake/uploads"
NOTES = b"uma's private notes" * 64


@pytest.fixture
def lake(engine: Engine, tmp_path: Path) -> Engine:
    with engine.runtime.db.session() as session:
        for name in ("disk", "disk2"):
            add_endpoint(session, engine.runtime.lake, principal=SYSTEM,
                         spec=EndpointCreate(name=name, protocol="file", location=str(tmp_path / name)))
    return engine


def _upload(engine: Engine, who: str, did: str, body: bytes, endpoint: str = "disk", **params: Any) -> Any:
    return engine.http.post(UPLOADS, headers=engine.headers(engine.token(who, "user")), content=body,
                            params={"did": did, "endpoint": endpoint, **params})


def _replicas(engine: Engine, did: str) -> list[tuple[int, str]]:
    scope, name = did.split(":", 1)
    with engine.runtime.db.session(readonly=True) as session:
        row = session.scalar(select(Did).where(Did.scope == scope, Did.name == name))
        assert row is not None
        return [(r.endpoint_id, r.state) for r in session.scalars(select(Replica).where(Replica.did_id == row.id))]


def test_another_users_file_is_taken_whatever_the_bytes(lake: Engine) -> None:
    assert _upload(lake, "uma", "uma:notes/a.bin", NOTES).status_code == 201
    assert lake.http.post("/api/v1/lake/dids", headers=lake.headers(lake.token("uma", "user")),
                          json={"did": "uma:set", "type": "dataset"}).status_code == 201
    before = _replicas(lake, "uma:notes/a.bin")
    answers = [_upload(lake, "xb1", "uma:notes/a.bin", NOTES),  # the exact bytes: was 200 created false
               _upload(lake, "xb1", "uma:notes/a.bin", b"a guess"),
               _upload(lake, "xb1", "uma:notes/a.bin", NOTES, endpoint="disk2"),
               _upload(lake, "xb1", "uma:notes/a.bin", NOTES, sha256="0" * 64)]
    for answer in answers:
        assert answer.status_code == 409, answer.text
        body = answer.json()
        assert body == {"code": "DidConflict", "message": "uma:notes/a.bin is taken; choose another name",
                        "details": [{"loc": "did", "msg": "taken"}]}
    dataset = _upload(lake, "xb1", "uma:set", NOTES)  # a dataset's name: the same words, not its type
    assert dataset.status_code == 409 and dataset.json()["message"] == "uma:set is taken; choose another name"
    assert _replicas(lake, "uma:notes/a.bin") == before  # no replica on disk2, nothing marked
    assert _upload(lake, "xb1", "xb1:notes/a.bin", NOTES).status_code == 201  # a name of its own is fine


def test_registering_a_dataset_under_another_users_name_is_taken_whatever_it_is(lake: Engine) -> None:
    """POST /lake/dids named as another user's file or dataset said which it was ("exists already (a file)")."""
    assert _upload(lake, "uma", "uma:notes/a.bin", NOTES).status_code == 201
    uma, xb1 = (lake.headers(lake.token(who, "user")) for who in ("uma", "xb1"))
    assert lake.http.post("/api/v1/lake/dids", headers=uma, json={"did": "uma:set", "type": "dataset"}).status_code \
        == 201
    for did in ("uma:notes/a.bin", "uma:set"):
        answer = lake.http.post("/api/v1/lake/dids", headers=xb1, json={"did": did, "type": "dataset"})
        assert answer.status_code == 409, answer.text
        assert answer.json()["message"] == f"{did} is taken; choose another name"
    mine = lake.http.post("/api/v1/lake/dids", headers=uma, json={"did": "uma:notes/a.bin", "type": "dataset"})
    assert mine.status_code == 409 and "exists already (a file)" in mine.json()["message"]  # its owner may know


def test_the_owner_still_hears_what_its_own_file_holds(lake: Engine) -> None:
    assert _upload(lake, "uma", "uma:notes/a.bin", NOTES).status_code == 201
    again = _upload(lake, "uma", "uma:notes/a.bin", NOTES)
    assert again.status_code == 200 and again.json()["created"] is False
    other = _upload(lake, "uma", "uma:notes/a.bin", b"other bytes")
    assert other.status_code == 409 and "sha256" in other.json()["message"]
    admin = lake.http.post(UPLOADS, headers=lake.headers(lake.admin_token), content=NOTES,
                           params={"did": "uma:notes/a.bin", "endpoint": "disk2"})
    assert admin.status_code == 201  # admins read everything: a second replica


def test_registering_bytes_under_another_users_name_is_taken_before_they_are_read(lake: Engine) -> None:
    assert _upload(lake, "uma", "uma:notes/a.bin", NOTES).status_code == 201
    hasher = Hasher()
    hasher.update(NOTES)
    right = hasher.result()
    xb1 = Principal("xb1", Role.USER)
    for checksums, verify in ((right, True), (right, False), (type(right)(7, "00000001", "1" * 64), True)):
        with lake.runtime.db.session() as session, pytest.raises(DidConflict, match="is taken"):
            register_replica(session, lake.runtime.lake, principal=xb1, did="uma:notes/a.bin", endpoint="disk",
                             checksums=checksums, verify=verify)
    assert len(_replicas(lake, "uma:notes/a.bin")) == 1
