"""A copy of another participant's data held under a data-space agreement (``lake.terms``): once its terms no
longer permit its use, every surface that reads its bytes refuses it (403 naming the agreement) while its
metadata still reads; terms on a dataset never reach a file someone else attaches to it.

The terms are written into the DIDs' metadata here as the data space writes them when it lands a copy
(``dataspace.dataplane.land``; tests/integration/test_dataspace_engines.py lands one between two engines)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from helpers import Engine
from lake_fixtures import rain_field
from twinengine.auth.principal import Principal, Role
from twinengine.errors import PermissionDenied
from twinengine.lake.models import Did

UMA, OLA = Principal(name="uma", role=Role.USER), Principal(name="ola", role=Role.USER)
ADMIN = Principal(name="admin", role=Role.ADMIN)


def _held(engine: Engine, pattern: str, *, days: int, signed: datetime) -> None:
    terms = {"provider": "did:web:partner.example", "agreement": "urn:uuid:agreement-1", "dataset": "gauges",
             "signed_at": signed.isoformat(), "policy": {"permission": [{"action": "use", "constraint": [
                 {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": f"P{days}D"}]}]}}
    with engine.runtime.db.session() as session:
        for did in session.scalars(select(Did).where(Did.scope == "remote", Did.name.like(pattern))):
            did.meta = {**(did.meta or {}), "dataspace": terms}


def test_an_expired_copy_is_refused_by_downloads_and_collections(engine: Engine, tmp_path: Path) -> None:
    user = engine.as_role("uma", "user")
    engine.as_role("pat", "provider").lake.add_endpoint("disk", "file", str(tmp_path / "disk"))
    nc = tmp_path / "rain.nc"
    rain_field().to_netcdf(nc, engine="h5netcdf")
    user.lake.add_dataset("remote:rain")
    user.lake.upload(nc, "remote:rain/rain.nc", endpoint="disk", dataset="remote:rain")
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
