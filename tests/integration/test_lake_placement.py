"""Rule evaluation (set-based SQL) and verified local transfers on SQLite and PostgreSQL: where locks land,
that a second pass changes nothing, what makes a rule STUCK, and what a corrupt source or a wrong copy does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from helpers import Engine
from lake_fixtures import converge
from twinengine.auth.principal import SYSTEM
from twinengine.errors import DataCorrupted
from twinengine.lake import dids, endpoints, rules, transfers, uploads
from twinengine.lake.checksums import Checksums
from twinengine.lake.models import Attachment, Did, Replica, Rule, RuleLock, Transfer
from twinengine.lake.schemas import DidType, EndpointCreate, EndpointUpdate
from twinengine.lake.storage.local import INCOMING, LocalWriter


@pytest.fixture
def files(engine: Engine, tmp_path: Path) -> list[str]:
    """Twenty files on endpoint ``a``; endpoints ``b`` and ``c`` empty; all three site-tagged and writable."""
    runtime = engine.runtime
    with runtime.db.session() as session:
        for name in ("a", "b", "c"):
            endpoints.add_endpoint(session, runtime.lake, principal=SYSTEM, spec=EndpointCreate(
                name=name, protocol="file", location=str(tmp_path / name), attributes={"site": name.upper()}))
        dids.add_did(session, principal=SYSTEM, did="p:set", type=DidType.DATASET)
    names = []
    for i in range(20):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(os.urandom(1000 + i))
        uploads.upload_file(runtime.db, runtime.lake, principal=SYSTEM, path=path, did=f"p:f{i}.bin",
                            endpoint="a", dataset="p:set")
        names.append(f"p:f{i}.bin")
    return names


def add_rule(engine: Engine, copies: int, expression: str) -> str:
    with engine.runtime.db.session() as session:
        return rules.add_rule(session, principal=SYSTEM, did="p:set", copies=copies, expression=expression).id


def evaluate(engine: Engine, rule_id: str) -> Rule:
    with engine.runtime.db.session() as session:
        rule = session.get_one(Rule, rule_id)
        rules.evaluate(session, rule)
        session.flush()
        session.expunge(rule)
        return rule


def placements(engine: Engine, rule_id: str) -> dict[int, set[int]]:
    with engine.runtime.db.session(readonly=True) as session:
        out: dict[int, set[int]] = {}
        for did_id, ep in session.execute(select(RuleLock.did_id, RuleLock.endpoint_id)
                                          .where(RuleLock.rule_id == rule_id)):
            out.setdefault(did_id, set()).add(ep)
        return out


def endpoint_id(engine: Engine, name: str) -> int:
    with engine.runtime.db.session(readonly=True) as session:
        return endpoints.get_endpoint(session, name).id


def test_locks_prefer_holders_then_spread_and_a_second_pass_changes_nothing(engine: Engine, files: list[str]) -> None:
    a, b, c = (endpoint_id(engine, n) for n in "abc")
    one = add_rule(engine, 1, "site=A|site=B|site=C")
    assert evaluate(engine, one).state == "OK"  # every file already on a: no copy needed
    assert set(map(frozenset, placements(engine, one).values())) == {frozenset({a})}

    two = add_rule(engine, 2, "site=A|site=B|site=C")
    rule = evaluate(engine, two)
    assert (rule.state, rule.locks_ok, rule.locks_replicating) == ("REPLICATING", 20, 20)
    placed = placements(engine, two)
    assert all(len(eps) == 2 and a in eps for eps in placed.values())
    seconds = [next(iter(eps - {a})) for eps in placed.values()]
    assert {seconds.count(b), seconds.count(c)} != {0, 20}  # spread over b and c, not all on one
    with engine.runtime.db.session(readonly=True) as session:
        queued = session.scalar(select(func.count()).select_from(Transfer).where(Transfer.rule_id == two))
        copying = session.scalar(select(func.count()).select_from(Replica).where(Replica.state == "COPYING"))
        paths = set(session.scalars(select(Replica.path).where(Replica.state == "COPYING")))
    assert queued == 20 and copying == 20
    assert paths == {uploads.replica_path("p", f"f{i}.bin") for i in range(20)}

    evaluate(engine, two)  # nothing new: no second transfer, no second lock
    assert placements(engine, two) == placed
    with engine.runtime.db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Transfer)) == 20
    converge(engine.runtime)
    with engine.runtime.db.session(readonly=True) as session:
        final = session.get_one(Rule, two)
        assert (final.state, final.locks_ok) == ("OK", 40)


def test_too_few_endpoints_or_no_source_make_a_rule_stuck(engine: Engine, files: list[str]) -> None:
    runtime = engine.runtime
    rule_id = add_rule(engine, 2, "site=A|site=B")
    with runtime.db.session() as session:
        endpoints.update_endpoint(session, runtime.lake, principal=SYSTEM, name="b",
                                  change=EndpointUpdate(write=False))
    rule = evaluate(engine, rule_id)
    assert rule.state == "STUCK" and rule.last_error == "only 1 of 2 endpoints are writable for some files"

    with runtime.db.session() as session:
        endpoints.update_endpoint(session, runtime.lake, principal=SYSTEM, name="b", change=EndpointUpdate(write=True))
        endpoints.update_endpoint(session, runtime.lake, principal=SYSTEM, name="a", change=EndpointUpdate(read=False))
    rule = evaluate(engine, rule_id)
    assert rule.state == "STUCK" and rule.last_error == "no available replica to copy from"
    assert (rule.locks_ok, rule.locks_stuck) == (20, 20)
    with runtime.db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Transfer)) == 0  # nothing to copy from

    with runtime.db.session() as session:
        endpoints.update_endpoint(session, runtime.lake, principal=SYSTEM, name="a", change=EndpointUpdate(read=True))
    assert evaluate(engine, rule_id).state == "REPLICATING"
    converge(engine.runtime)
    with runtime.db.session(readonly=True) as session:
        assert session.get_one(Rule, rule_id).state == "OK"


def expected_of(engine: Engine, did: str) -> tuple[Checksums, str]:
    with engine.runtime.db.session(readonly=True) as session:
        row = dids.get_did(session, did)
        return Checksums(row.bytes or 0, row.adler32 or "", row.sha256 or ""), uploads.replica_path(*did.split(":"))


def test_a_corrupt_source_is_named_and_a_wrong_copy_is_never_committed(engine: Engine, files: list[str],
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = engine.runtime
    with runtime.db.session(readonly=True) as session:
        a, b = endpoints.get_endpoint(session, "a"), endpoints.get_endpoint(session, "b")
        session.expunge_all()
    expected, path = expected_of(engine, "p:f1.bin")
    assert transfers.copy_file(runtime.lake, a, b, path, expected) == expected
    assert (tmp_path / "b" / path).read_bytes() == (tmp_path / "a" / path).read_bytes()

    expected, path = expected_of(engine, "p:f2.bin")
    original = (tmp_path / "a" / path).read_bytes()
    (tmp_path / "a" / path).write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])  # bit rot on the source
    with pytest.raises(DataCorrupted, match="source replica on a"):
        transfers.copy_file(runtime.lake, a, b, path, expected)
    assert not (tmp_path / "b" / path).exists()
    (tmp_path / "a" / path).write_bytes(original)

    # The destination returning other bytes than were copied cannot be provoked on a healthy disk: the
    # read-back is made to see a flipped byte (a simulated fault), the one thing mocked here.
    read_back = LocalWriter.read_back

    def flipped(self: LocalWriter, offset: int, view: memoryview) -> int:
        n = read_back(self, offset, view)
        view[0] ^= 0xFF
        return n

    monkeypatch.setattr(LocalWriter, "read_back", flipped)
    with pytest.raises(DataCorrupted, match="copy on b does not match"):
        transfers.copy_file(runtime.lake, a, b, path, expected)
    assert not (tmp_path / "b" / path).exists() and not list((tmp_path / "b" / INCOMING).iterdir())


@pytest.mark.every_store  # reaches code only PostgreSQL runs
def test_a_rule_over_several_chunks_is_placed_once(engine: Engine, files: list[str]) -> None:
    """More files than one chunk of the set-based pass (and, on PostgreSQL, the statistics refresh)."""
    runtime = engine.runtime
    count = rules._CHUNK + 150
    with runtime.db.session() as session:
        a = endpoints.get_endpoint(session, "a").id
        dataset = dids.add_did(session, principal=SYSTEM, did="p:many", type=DidType.DATASET)
        first = (session.scalar(select(func.max(Did.id))) or 0) + 1
        rows = [{"id": first + i, "scope": "p", "name": f"many/{i}", "type": "file", "bytes": 1,
                 "adler32": "00620062", "sha256": f"{i:064x}", "meta": {}, "created_by": "test"}
                for i in range(count)]
        session.execute(insert(Did), rows)
        session.execute(insert(Attachment), [{"parent_id": dataset.id, "child_id": r["id"]} for r in rows])
        session.execute(insert(Replica), [{"did_id": r["id"], "endpoint_id": a, "state": "AVAILABLE",
                                           "path": uploads.replica_path("p", str(r["name"])), "bytes": 1}
                                          for r in rows])
        rule_id = rules.add_rule(session, principal=SYSTEM, did="p:many", copies=2, expression="site=A|site=B").id
    for _ in range(2):  # the second pass finds everything in place
        rule = evaluate(engine, rule_id)
        assert (rule.state, rule.locks_ok, rule.locks_replicating, rule.locks_stuck) == ("REPLICATING", count,
                                                                                         count, 0)
        with runtime.db.session(readonly=True) as session:
            assert session.scalar(select(func.count()).select_from(Transfer)
                                  .where(Transfer.rule_id == rule_id)) == count
            assert session.scalar(select(func.count()).select_from(Replica)
                                  .where(Replica.state == "COPYING")) == count
