"""Shared fixtures: the store backends (SQLite always; PostgreSQL when a server answers, required in CI)."""

from __future__ import annotations

import gc
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The CLI's rich consoles are made at import, when COLUMNS fixes their width for good: make it wide in every
# test process (xdist workers import the CLI before any CliRunner sets it), so tables never wrap a value.
os.environ["COLUMNS"] = "200"
# Synchronous graphs run on a request thread of each engine the tests start (a child process per engine would
# add about 1.5 s to each): tests/integration/test_sync_processes.py, the shared demo runs and the official
# openEO suite run them in child processes, as an engine does by default.
os.environ.setdefault("TWIN_SYNC_ISOLATION", "thread")
# No network call, sleep or second unit of work while a write transaction is open (``store.guard``): refused in
# every engine the tests start, in this process (installed below) and in the ``twin serve`` processes (the
# environment is inherited). A test fails on a violation made while it ran (``no_write_held_across_io``).
os.environ.setdefault("TWIN_STORE_GUARD", "raise")

import psycopg
import pytest

try:  # Keras brings absl, whose log handler keeps the stderr it first saw (a test's captured one) and closes it
    # when logging is reconfigured while another stderr is current (uvicorn's dictConfig inside a CliRunner):
    # pytest's capture file then fails every later test of the worker. Give it the process's own stderr.
    import sys as _sys

    from absl import logging as _absl_logging

    _absl_logging.get_absl_handler().python_handler.stream = _sys.__stderr__
except ImportError:  # the ml extra is not installed
    pass
from sqlalchemy import text

from browser import chromium_browser  # noqa: F401  (one Chromium per test process, for every browser test)
from helpers import Engine, copy_sqlite, engine_on, migrated_template, need_sandbox, unavailable
from twinengine.config import Settings
from twinengine.store import guard as store_guard
from twinengine.store.base import Base

store_guard.install("raise")

# own_database; demo_run; lake_engine; a crashed test process's stacks, told after the tests
pytest_plugins = ["pg_fixtures", "demo_fixtures", "staging_fixtures", "crash_reports"]
collect_ignore = ["data"]  # vendored test data: the CWL conformance tests hold Python scripts named test_*.py

DURATIONS = Path(__file__).resolve().parent / "durations.json"
BACKENDS = [b for b in os.environ.get("TWIN_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
POSTGRES_ADMIN_URL = os.environ.get("TWIN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``sandbox`` run app code where only a sandbox may run it (``twin serve`` refuses to run it
    unsandboxed): without bubblewrap they skip with the reason, and CI, which requires it, fails them instead."""
    if item.get_closest_marker("sandbox") is not None:
        need_sandbox()


EVERY_STORE = os.environ.get("TWIN_TEST_EVERY_STORE", "") not in ("", "0")
# Slow cases against real servers (marked ci_only) run where TWIN_TEST_FULL is set: .ci/run sets it, so CI runs
# the whole suite; a local `make test` deselects them and says how many, and how to run them.
FULL = os.environ.get("TWIN_TEST_FULL", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped, ci_only = [], [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if not FULL and _ci_only(item, callspec.params.get("backend") if callspec is not None else None):
            ci_only.append(item)
            continue
        if callspec is not None and callspec.params.get("backend") == "postgresql":
            item.add_marker(pytest.mark.postgres)
            on_sqlite_too = "sqlite" in BACKENDS  # TWIN_TEST_BACKENDS=postgresql runs everything there
            if on_sqlite_too and not (EVERY_STORE or item.get_closest_marker("every_store") or _chose_backend(item)):
                dropped.append(item)
                continue
        kept.append(item)
    if dropped or ci_only:
        config.hook.pytest_deselected(items=dropped + ci_only)
    if dropped:
        config.stash[ON_SQLITE_ONLY] = len(dropped)
    if ci_only:
        config.stash[CI_ONLY] = len(ci_only)
    items[:] = longest_files_first(kept)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection built out of the garbage collector's way, as ``twin serve`` does once it started
    (``api/starting.py``): every test module, its items and what they imported live to the end of the run,
    and each full collection walked them all again (a test process spent 11 % of its CPU collecting: 5.0 s
    of 43.4 in the stream and access API tests, 2.2 s of 41.6 with this). What tests allocate is collected
    as before; ``test_engine_gc`` checks in a process of its own that an engine never freezes anything."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


ON_SQLITE_ONLY = pytest.StashKey[int]()


def _ci_only(item: pytest.Item, backend: str | None) -> bool:
    """Marked ``ci_only``, or ``ci_only(backend="postgresql")`` and this is that store's variant."""
    marker = item.get_closest_marker("ci_only")
    return marker is not None and marker.kwargs.get("backend", backend) == backend

CI_ONLY = pytest.StashKey[int]()


def _chose_backend(item: pytest.Item) -> bool:
    """The test names its backend itself (``parametrize("backend", [...])``)."""
    for marker in item.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else ""
        if "backend" in ([n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)):
            return True
    return False


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Say which tests ran on PostgreSQL, and how to run them all there (printed by xdist's controller too,
    which collects nothing itself)."""
    if "postgresql" in BACKENDS[1:] and not EVERY_STORE:
        dropped = config.stash.get(ON_SQLITE_ONLY, None)
        terminalreporter.write_line(
            "PostgreSQL variants ran for the tests marked every_store (the store and concurrency tests, and those "
            "reaching code only PostgreSQL runs)" + (f"; {dropped} others were deselected" if dropped else "")
            + "; TWIN_TEST_EVERY_STORE=1 runs every test on both stores")
    if not FULL:
        skipped = config.stash.get(CI_ONLY, None)
        terminalreporter.write_line(
            "Slow cases (marked ci_only: real servers killed or frozen, external tools, second trainings) run in CI"
            + (f"; {skipped} were deselected here" if skipped else "")
            + "; TWIN_TEST_FULL=1 make test runs them too")


BROWSER_FILES = "tests/e2e/test_portal"  # every file of the portal's browser tests starts with this


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``--dist loadfile`` (``make test``), the portal's browser test files go to one worker as if they
    were one file: its one Chromium and its one ``twin serve`` over the demo's data (``browser.site``) serve
    them all. Spread over the workers, each worker started both again (about 100 s of CPU each time, most of
    it the served engine's warm-ups and its loops over the demo's many twins for as long as the worker ran)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class BrowserFilesTogether(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            scope = str(super()._split_scope(nodeid))
            return BROWSER_FILES if scope.startswith(BROWSER_FILES) else scope

    return BrowserFilesTogether(config, log)


def longest_files_first(items: list[pytest.Item]) -> list[pytest.Item]:
    """The test files that took longest in a whole run (tests/durations.json) first, each file's tests in
    their own order: the workers (``--dist loadfile`` hands out files in this order) do not end with one long
    file running alone while the others wait."""
    took = {k: v for k, v in json.loads(DURATIONS.read_text()).items() if not k.startswith("_")}
    rank = {path: -seconds for path, seconds in took.items()}
    browser = sum(seconds for path, seconds in took.items() if path.startswith(BROWSER_FILES))
    order = {id(item): i for i, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[float, float, int]:
        """The browser files rank as the one unit a worker runs them as (``pytest_xdist_make_scheduler``)."""
        path = item.nodeid.split("::", 1)[0]
        own = rank.get(path, 0.0)
        return (-browser if path.startswith(BROWSER_FILES) else own, own, order[id(item)])

    return sorted(items, key=key)


@pytest.fixture(autouse=True)
def no_write_held_across_io() -> Iterator[None]:
    """Fail a test during which a thread waited on the world with a write transaction open (``store.guard``):
    the guard raised there, but the code may have caught it (a loop that logs and goes on)."""
    store_guard.violations(clear=True)
    yield
    found = store_guard.violations(clear=True)
    if found:
        pytest.fail(f"{len(found)} call(s) waited on the world with a write transaction open; the first:\n{found[0]}",
                    pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def lake_file_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests put their file endpoints in their own temporary folders: allow those, in this process and in the
    engines it starts (the environment is inherited), as an admin would with TWIN_LAKE_FILE_ROOTS."""
    root = tmp_path_factory.getbasetemp().resolve()
    before = os.environ.get("TWIN_LAKE_FILE_ROOTS")
    os.environ["TWIN_LAKE_FILE_ROOTS"] = str(root)
    yield root
    if before is None:
        os.environ.pop("TWIN_LAKE_FILE_ROOTS", None)
    else:
        os.environ["TWIN_LAKE_FILE_ROOTS"] = before


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server for this test session, dropped afterwards."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable("postgresql", f"cannot connect to {POSTGRES_ADMIN_URL}: {exc}".strip())
        raise  # unreachable: unavailable() skips or fails
    name = f"twin_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield base.replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def migrated_sqlite() -> Path:
    """A SQLite store migrated to head once per test process (``helpers.migrated_template``)."""
    return migrated_template()


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """SQLite: a new file per test in the data dir (None = that default), copied from a migrated one.
    PostgreSQL: the session database, emptied before each test."""
    if backend == "sqlite":
        if request.node.get_closest_marker("empty_store") is None:
            copy_sqlite(request.getfixturevalue("migrated_sqlite"), tmp_path / "data" / "twin.db")
        yield None
        return
    url = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    yield url


def _empty_postgres(url: str) -> None:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            existing = set(inspect(conn).get_table_names())
            tables = [t.name for t in Base.metadata.sorted_tables if t.name in existing]
            if tables:
                conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """Routes are built as requests reach them: a test makes a few (0.3 s less per engine)."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, warm_routes=False)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """A started engine (migrated store, bootstrapped admin) served in-process."""
    with engine_on(settings) as started:
        yield started
