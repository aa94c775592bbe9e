"""The store out of reach and back: a PostgreSQL of the test's own, stopped at once (as a crash would) and started
again under a running engine. Requests meanwhile are refused with 503 ``StoreUnavailable`` and Retry-After,
never a 500; records a function could not write effects for wait for the store instead of being dead-lettered
as the function's failure; once the store is back every record has become state, once."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import MINIMAL_STATE, free_port, make_app, unavailable
from streams_fixtures import drop_streams, eventually, require_nats, stream_engine, stream_settings  # noqa: F401
from twinengine.auth.principal import SYSTEM
from twinengine.errors import StoreUnavailable
from twinengine.streams import service as streams
from twinengine.streams.records import check_records

FUNCTIONS = '''
def gauge(ctx, records):
    for r in records:
        ctx.update_state(level=r["level"], timestamp=r["time"])
'''
STREAMS = {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}}


class OwnPostgres:
    """A PostgreSQL server of this test alone (initdb in a temporary folder, a free port), run as the user
    postgres: it may be stopped and started without touching the machine's own."""

    def __init__(self, folder: Path) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            unavailable("postgresql", "no initdb under /usr/lib/postgresql (Debian's postgresql package)")
        self.bin = found[-1].parent
        self.data, self.port = folder / "data", free_port()
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(folder.parent, "postgres", "postgres")
            shutil.chown(folder, "postgres", "postgres")
        self.run(str(self.bin / "initdb"), "--pgdata", str(self.data), "--username", "postgres", "--auth", "trust")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *command: str) -> None:
        prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        self.run(str(self.bin / "pg_ctl"), "--pgdata", str(self.data), "--wait", "--log", str(self.data.parent / "log"),
                 "--options", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data.parent} -c fsync=on",
                 "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop it; ``immediate`` ends every connection at once and skips the checkpoint, as a crash would."""
        self.run(str(self.bin / "pg_ctl"), "--pgdata", str(self.data), "--mode", mode, "--wait", "stop")


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if os.geteuid() != 0 and os.environ.get("USER") != "postgres":
        pytest.skip("starting a PostgreSQL of the test's own needs root (to run it as postgres) or the user postgres")
    folder = Path(tempfile.mkdtemp(prefix="twin-own-postgres-"))  # not under pytest's folders: postgres enters it
    try:
        server = OwnPostgres(folder / "pg")
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(AssertionError):  # stopped already
                server.stop("fast")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def gauged_well(engine: Any, tmp_path: Path) -> Any:
    """uma's twin ``well`` of an app whose function writes each reading's level as state; her client."""
    engine.as_role("ada", "developer").publish_app(make_app(tmp_path, name="outage-app", manifest={
        "streams": STREAMS, "state": MINIMAL_STATE,
        "functions": {"gauge": {"entrypoint": "outage_app.fns:gauge", "stream": "readings"}}},
        files={"outage_app/fns.py": FUNCTIONS}))
    uma = engine.as_role("uma", "user")
    uma.create_twin("outage-app@1.0.0", "well", {"station": "W1"})
    return uma


def levels(engine: Any) -> int:
    client = engine.as_role("uma", "user")
    return len(client.history("well", "level", limit=1000).items)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_store_restart_refuses_requests_with_503_and_loses_no_function_effect(
        own_postgres: OwnPostgres, tmp_path: Path, drop_streams: list[Any]) -> None:  # noqa: F811
    # engines_share_store (with NATS, as engines on several hosts run): the elected loops follow the store's
    # lock, which goes with the connection: the
    # function loop's term ends while the store is away and a new one starts when it is back
    require_nats()
    settings = stream_settings(tmp_path / "engine", "nats", own_postgres.url, function_backoff=0.05,
                               function_retries=2, engines_share_store=True)
    with stream_engine(settings, drop_streams) as engine:
        uma = gauged_well(engine, tmp_path)
        uma.streams.append("well", "readings", [{"time": f"2026-03-01T00:{i:02d}:00Z", "level": float(i)}
                                                for i in range(5)])
        eventually(lambda: levels(engine) == 5, timeout=60)
        with engine.runtime.db.session() as session:
            twin, _manifest, declared = streams.resolve(session, principal=SYSTEM, twin_ref="well",
                                                        stream="readings", action="stream.append")

        headers = engine.headers(engine.token("uma", "user"))
        own_postgres.stop()
        try:
            # a request needing the store: refused as unavailable, with when to repeat it
            response = engine.http.get("/api/v1/twins", headers=headers)
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "StoreUnavailable" and int(response.headers["Retry-After"]) >= 1
            with pytest.raises(StoreUnavailable):
                uma.streams.append("well", "readings", [{"time": "2026-03-01T01:00:00Z", "level": 99.0}])
            # records that reach the stream log while the store is down (it is not in the store): the
            # function runs on them and cannot write their effects, again and again, for longer than its
            # retries last (2 retries, 0.05 s and 0.1 s apart)
            later = [{"time": f"2026-03-01T00:{i:02d}:00Z", "level": float(i)} for i in range(5, 10)]
            streams.append_table(engine.runtime.streams, twin, "readings", declared,
                                 check_records(declared, later))
            time.sleep(3)
        finally:
            own_postgres.start()
        eventually(lambda: levels(engine) == 10, timeout=60)
        # and records sent after the outage still become state
        uma.streams.append("well", "readings", [{"time": f"2026-03-01T00:{i:02d}:00Z", "level": float(i)}
                                                for i in range(10, 15)])
        eventually(lambda: levels(engine) == 15, timeout=60)
        time.sleep(1)
        assert levels(engine) == 15
        (function,) = uma.streams.functions("well")
        assert function.dead_letters == 0 and function.offset == 15, function


def test_a_connection_the_store_drops_at_a_functions_write_is_waited_out_not_dead_lettered(
        tmp_path: Path, drop_streams: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The moment a restarted store drops a pooled connection cannot be timed against a function's write from
    outside, so a stand-in raises what SQLAlchemy raises then (an invalidated connection) at the function's
    revision write, five times in a row: more than its retries. The records wait; none is dead-lettered."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    from twinengine.daemons import streams_functions

    settings = stream_settings(tmp_path / "engine", "local", None, function_backoff=0.05, function_retries=2)
    with stream_engine(settings, drop_streams) as engine:
        uma = gauged_well(engine, tmp_path)
        real, dropped = streams_functions.state.append_revision, []

        def append_revision(*args: Any, **kwargs: Any) -> Any:
            if len(dropped) < 5:
                dropped.append(1)
                raise OperationalError("INSERT INTO state_revisions ...", {},
                                       psycopg.OperationalError("server closed the connection unexpectedly"),
                                       connection_invalidated=True)
            return real(*args, **kwargs)

        monkeypatch.setattr(streams_functions.state, "append_revision", append_revision)
        uma.streams.append("well", "readings", [{"time": f"2026-03-01T00:{i:02d}:00Z", "level": float(i)}
                                                for i in range(5)])
        eventually(lambda: levels(engine) == 5, timeout=60)
        assert len(dropped) == 5
        (function,) = uma.streams.functions("well")
        assert function.dead_letters == 0 and function.offset == 5, function
