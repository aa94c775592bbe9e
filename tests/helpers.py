"""Test helpers: an engine harness over a real store, and a factory for DT application folders."""

from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import yaml
from fastapi import FastAPI
from sqlalchemy import event
from starlette.testclient import TestClient
from typer.testing import CliRunner

from twinengine.auth.principal import SYSTEM, Role
from twinengine.auth.service import issue_token
from twinengine.cli.main import app as cli_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.errors import EngineUnavailable
from twinengine.runtime import Runtime

if TYPE_CHECKING:
    from twinengine.workers.service import AppWorkers

REPO = Path(__file__).resolve().parents[1]
REQUIRED = {s for s in os.environ.get("TWIN_TEST_REQUIRE", "").split(",") if s}


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database through its backup API (consistent whatever its journal holds)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@functools.cache
def migrated_template() -> Path:
    """A SQLite store migrated to head once per test process (kept in a folder of its own, removed at exit).
    Migrating a new file is about half of an in-process engine's start (0.3 s of 0.6 s), paid by thousands of
    tests; the migrations themselves are tested from an empty store (``empty_store``,
    tests/integration/test_store.py)."""
    from twinengine.store import migrate
    from twinengine.store.engine import Database

    folder = Path(tempfile.mkdtemp(prefix="twin-migrated-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "twin.db"
    db = Database(f"sqlite:///{path}")
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    return path


def unavailable(service: str, reason: str) -> None:
    """Skip locally when a real server is missing; fail when CI said it must be there."""
    if service in REQUIRED:
        pytest.fail(f"{service} is required (TWIN_TEST_REQUIRE) but {reason}", pytrace=False)
    pytest.skip(f"{service} not available: {reason}")


def need_modules(service: str, *modules: str, hint: str) -> None:
    """Optional extras (ml, slurm) skip with the reason where they are not installed; CI installs and requires them."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            unavailable(service, f"{module} is not installed ({hint})")


# The environment of a tool the tests run that must not reach the internet (CI has none but the package index):
# its HTTP clients are sent to a closed loopback port and refused at once, where a network that drops packets
# instead of refusing them would hold each attempt until its timeout. Loopback is reached directly.
OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "NO_PROXY": "127.0.0.1,localhost"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """Ask a server process to stop (SIGTERM), and kill it if it has not within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serve_engine(data_dir: Path, port: int, *, capture: bool = False, start_timeout: float = 60,
                 args: Sequence[str] = (), preexec: Callable[[], None] | None = None,
                 **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """``twin serve`` as a real process (``TWIN_*`` overrides in ``env``, more options in ``args``, ``preexec``
    run in the child before it starts), waiting until its engine has started (at most ``start_timeout``
    seconds; ``/health`` answers earlier, while it starts). With ``capture`` its output is piped: read it only
    once the process has ended. Otherwise it goes to ``serve_log(data_dir, port)``, whose end a failing test can
    show (an engine's 500 or a start that failed says why only there)."""
    environ = {**os.environ, "TWIN_DATA_DIR": str(data_dir), **env}
    log = serve_log(data_dir, port)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as written:
        out: Any = subprocess.PIPE if capture else written
        process = subprocess.Popen([sys.executable, "-m", "twinengine.cli.main", "serve", "--port", str(port),
                                    *args], env=environ, stdout=out, stderr=subprocess.STDOUT, preexec_fn=preexec)
    try:
        deadline = time.monotonic() + start_timeout
        with Client(f"http://127.0.0.1:{port}") as probe:
            while True:
                try:
                    if probe.health().get("engine") != "starting":  # the store answers before the engine
                        break
                except EngineUnavailable:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    printed = process.stdout.read().decode() if capture and process.poll() is not None \
                        and process.stdout else log_tail(log)
                    raise AssertionError(f"twin serve did not start\n{printed}")
                time.sleep(0.1)
        yield process
    finally:
        stop_process(process)


def serve_log(data_dir: Path, port: int) -> Path:
    """Where ``serve_engine`` writes the output of the engine it serves on ``data_dir`` and ``port``."""
    return data_dir.parent / f"twin-serve-{port}.log"


def log_tail(path: Path, size: int = 4000) -> str:
    """The end of a log a test wrote, for a failure's message ("" where there is none)."""
    return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else ""


@contextmanager
def serve_settings(settings: Settings) -> Iterator[str]:
    """``twin serve`` on the data dir and store of ``settings`` (a test's SQLite file or its PostgreSQL
    database), on a free loopback port; yields its URL."""
    port = free_port()
    env = {"TWIN_DATABASE_URL": settings.database_url} if settings.database_url else {}
    with serve_engine(settings.data_dir, port, **env):
        yield f"http://127.0.0.1:{port}"


RIVER_REACH = REPO / "examples" / "apps" / "river-reach"


@dataclass
class Engine:
    """A started engine on a real store, reachable in-process through ``http`` (Starlette's TestClient)."""

    runtime: Runtime
    app: FastAPI
    http: TestClient
    admin_token: str

    def token(self, name: str, role: str | Role, ttl: Any = "default") -> str:
        """Issue a token directly through the service (fast; the API path is tested on its own)."""
        from datetime import timedelta

        lifetime = timedelta(days=1) if ttl == "default" else ttl
        with self.runtime.db.session() as session:
            signed = issue_token(session, self.runtime.issuer, principal=SYSTEM, name=name, role=Role(role),
                                 ttl=lifetime)
        return signed.token

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def sdk(self, token: str | None) -> Client:
        return Client("http://testserver", token, http=self.http)

    def as_role(self, name: str, role: str) -> Client:
        return self.sdk(self.token(name, role))


@dataclass
class LiveEngine:
    """An engine serving real HTTP on a loopback port, and a way to run the ``twin`` CLI against it."""

    url: str
    admin_token: str
    settings: Settings

    def twin(self, *args: str, token: str | None = None, expect: int = 0) -> str:
        """Run ``twin --url URL --token TOKEN ARGS`` in-process; check the exit code; return the output."""
        result = CliRunner().invoke(cli_app, ["--url", self.url, "--token", token or self.admin_token, *args],
                                    catch_exceptions=False, env={"COLUMNS": "200"})
        assert result.exit_code == expect, f"exit {result.exit_code}: {result.output}"
        return result.output

    def twin_json(self, *args: str, token: str | None = None) -> Any:
        return json.loads(self.twin("--json", *args, token=token))

    def client(self, token: str | None = None) -> Client:
        return Client(self.url, token or self.admin_token)


MINIMAL_STATE = {
    "level": {"type": "number", "unit": "m", "minimum": -10, "maximum": 100},
    "count": {"type": "integer"},
    "label": {"type": "string", "enum": ["low", "high"]},
    "on": {"type": "boolean"},
    "config": {"type": "object"},
}


def make_app(root: Path, *, name: str = "test-app", version: str = "1.0.0", manifest: dict[str, Any] | None = None,
             files: dict[str, str] | None = None) -> Path:
    """Write an app folder under ``root`` and return it. ``manifest`` entries override the defaults."""
    folder = root / f"{name}-{version}"
    package = name.replace("-", "_")
    data: dict[str, Any] = {
        "manifest_version": 1, "name": name, "version": version, "title": f"Test app {name}",
        "description": "An app for tests.", "domain": "testing", "keywords": ["test"],
        "authors": [{"name": "Tester"}], "license": "MIT",
        "parameters": {"type": "object", "properties": {
            "station": {"type": "string", "minLength": 2},
            "area_km2": {"type": "number", "exclusiveMinimum": 0, "default": 10}},
            "required": ["station"], "additionalProperties": False},
        "state": MINIMAL_STATE,
    }
    data.update(manifest or {})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "twinapp.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (folder / package).mkdir(exist_ok=True)
    (folder / package / "__init__.py").write_text('"""Test app package."""\n')
    for rel, text in (files or {}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


@contextmanager
def warm_app(root: Path, package: str, code: str, *, timeout: float = 30) -> Iterator[AppWorkers]:
    """The workers of a one-module app (``package/fns.py`` holding ``code``) under ``root``, in bubblewrap
    where it works; stopped at the end."""
    from twinengine.workers.sandbox import Sandbox, bwrap_works
    from twinengine.workers.service import Workers

    (root / "code" / package).mkdir(parents=True)
    (root / "code" / package / "fns.py").write_text(code)
    mode = "bwrap" if bwrap_works() is None else "none"
    workers = Workers(sandbox=Sandbox(mode, hidden=[]), scratch_root=root, timeout=timeout, memory_bytes=4 << 30)
    try:
        yield workers.for_app(package, label=package.replace("_", "-"), code=root / "code", env=None)
    finally:
        workers.close()


def need_sandbox() -> None:
    """The sandbox tests need a working bwrap (Debian's bubblewrap); CI installs it and requires them."""
    from twinengine.workers.sandbox import bwrap_works

    problem = bwrap_works()
    if problem is not None:
        unavailable("bwrap", problem)


@contextmanager
def engine_on(settings: Settings) -> Iterator[Engine]:
    """An engine started on ``settings`` (migrated store, bootstrapped admin), served in-process; closed after."""
    from twinengine.api import create_app

    runtime = Runtime.from_settings(settings)
    app = create_app(runtime=runtime)
    try:
        with TestClient(app) as http:
            engine = Engine(runtime=runtime, app=app, http=http, admin_token="")
            engine.admin_token = engine.token("admin", Role.ADMIN)  # through the started engine's own store
            yield engine
    finally:
        runtime.close()


def admin_token(engine: Settings | Path) -> str:
    """A fresh admin token for the engine with these settings (or data dir), signed with its key and recorded
    in its store, as ``twin token create --data-dir`` does: the first admin token is printed once, never kept."""
    from datetime import timedelta

    from twinengine.auth.issuer import BuiltinIssuer
    from twinengine.auth.keys import load_or_create_signing_key
    from twinengine.store.engine import Database

    settings = engine if isinstance(engine, Settings) else Settings(data_dir=engine)
    issuer = BuiltinIssuer(load_or_create_signing_key(settings.data_dir / "keys" / "issuer-es256.pem"),
                           settings.token_issuer)
    db = Database(settings.db_url)
    try:
        with db.session() as session:
            return issue_token(session, issuer, principal=SYSTEM, name="admin", role=Role.ADMIN,
                               ttl=timedelta(days=1)).token
    finally:
        db.dispose()


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements this thread sends while the block runs (the engine's own loops run on others)."""
    seen: list[str] = []
    me = threading.get_ident()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() == me:
            seen.append(statement)

    event.listen(engine.runtime.db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.runtime.db.engine, "before_cursor_execute", count)


T = TypeVar("T")


def run_alone(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(scenario())`` on a thread of its own, its result or exception handed back: the worker's
    main thread may hold a running loop already (the browser tests' session-wide Playwright drives one there)."""
    import asyncio

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("value", asyncio.run(scenario())))
        except BaseException as exc:  # re-raised in the test's thread
            outcome.append(("error", exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]


def laughs(depth: int) -> str:
    """A manifest's ``outputs`` holding a "billion laughs": ``depth`` levels of nine aliases of the level
    below (a few hundred bytes that expand to 9**depth strings)."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"    l{names[0]}: &{names[0]} [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, depth):
        below = names[level - 1]
        lines.append(f"    l{names[level]}: &{names[level]} [{', '.join([f'*{below}'] * 9)}]")
    return "outputs:\n  bomb:\n    kind: dataset\n" + "\n".join(lines) + "\n"

