"""Two requests binding the same topic to the same stream at once: the second finds the first's binding
committed between its own two reads (PostgreSQL reads what others committed statement by statement) and
keeps it; it is no conflict. A topic that feeds another stream still is."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from helpers import RIVER_REACH, Engine
from twinengine.auth.principal import Principal, Role
from twinengine.errors import Conflict
from twinengine.streams import service
from twinengine.streams.models import StreamBinding

pytestmark = pytest.mark.every_store


def test_a_binding_committed_meanwhile_by_a_request_like_it_is_kept(engine: Engine,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if engine.runtime.db.url.startswith("sqlite"):
        pytest.skip("PostgreSQL only: SQLite runs one writing transaction at a time (BEGIN IMMEDIATE), so a "
                    "second binding request cannot commit between the first one's reads")
    engine.as_role("ada", "developer").publish_app(RIVER_REACH)
    uma = engine.as_role("uma", "user")
    for name in ("upper", "lower"):
        uma.create_twin("river-reach@0.1.0", name, {"station": "RR-01"})
    owner = Principal(name="uma", role=Role.USER, issuer=engine.runtime.issuer.issuer)
    real_select, done = service.select, []

    def select_after_another_request(*what: Any) -> Any:
        if what and what[0] is StreamBinding and not done:  # between this request's get and its topic read
            done.append(True)
            with engine.runtime.db.session() as other:
                service.bind_mqtt(other, principal=owner, twin_ref="upper", stream="gauges", topic="reach/upper")
        return real_select(*what)

    monkeypatch.setattr(service, "select", select_after_another_request)
    with engine.runtime.db.session() as session:
        row = service.bind_mqtt(session, principal=owner, twin_ref="upper", stream="gauges", topic="reach/upper")
        assert row.mqtt_topic == "reach/upper"
    monkeypatch.setattr(service, "select", real_select)
    with engine.runtime.db.session() as session:
        rows = list(session.scalars(select(StreamBinding)))
        assert [(r.stream, r.mqtt_topic) for r in rows] == [("gauges", "reach/upper")]
        with pytest.raises(Conflict, match="already feeds another stream"):
            service.bind_mqtt(session, principal=owner, twin_ref="lower", stream="gauges", topic="reach/upper")
