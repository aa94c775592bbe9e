"""What a site's Dask worker gets of a calibration: the engine's sandbox settings (``auto`` never becomes no
sandbox there), and one set of warm workers per app version and settings, shared by the tasks of the process."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinengine.calibration import remote
from twinengine.calibration.remote import RemoteApp, app_workers, close_all
from twinengine.workers.sandbox import Limits, Sandbox, SandboxMode
from twinengine.workers.service import Workers


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    close_all()
    yield
    close_all()


def _spec(tmp_path: Path, mode: SandboxMode = "auto", env: str | None = None) -> RemoteApp:
    sandbox = Sandbox(mode, hidden=[tmp_path / "data"], limits=Limits(processes=64, file_bytes=1 << 20, shm_bytes=0))
    workers = Workers(sandbox=sandbox, scratch_root=tmp_path, timeout=30.0, memory_bytes=1 << 30, idle=3)
    app = workers.for_app(("abc", str(env)), label="hymod@0.1.0", code=tmp_path / "code",
                          env=None if env is None else Path(env), cache=tmp_path / "cache")
    return RemoteApp.of(app, "abc")


@pytest.mark.parametrize(("mode", "on_site"), [("auto", "bwrap"), ("bwrap", "bwrap"), ("none", "none")])
def test_the_site_runs_the_engines_sandbox_and_never_falls_back_to_none(tmp_path: Path, mode: SandboxMode,
                                                                       on_site: str) -> None:
    spec = _spec(tmp_path, mode)
    assert spec.sandbox == on_site
    assert (spec.code, spec.cache, spec.hidden) == (str(tmp_path / "code"), str(tmp_path / "cache"),
                                                   (str(tmp_path / "data"),))
    assert (spec.timeout, spec.memory_bytes, spec.processes, spec.file_bytes, spec.warm) == (30.0, 1 << 30, 64,
                                                                                          1 << 20, 3)
    assert pickle.loads(pickle.dumps(spec)) == spec  # it travels to the site as a task argument
    sandbox = spec.workers().sandbox
    assert (sandbox.mode, sandbox.limits, sandbox.hidden) == (on_site, Limits(64, 1 << 20, 0), [tmp_path / "data"])


def test_tasks_of_one_process_share_the_warm_workers_of_an_app_version(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    found: list[object] = []
    threads = [threading.Thread(target=lambda: found.append(app_workers(pickle.loads(pickle.dumps(spec)))))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(f) for f in found}) == 1  # equal settings from eight tasks: one set of workers
    first = app_workers(spec)
    assert first.code == tmp_path / "code" and first.key == ("abc", None)
    assert app_workers(_spec(tmp_path, env=str(tmp_path / "env"))) is not first  # another environment
    assert app_workers(_spec(tmp_path, "none")) is not first  # other sandbox settings: their own workers
    assert remote.started_workers() == 0  # none started until a chunk runs
    close_all()
    assert app_workers(spec) is not first  # closed: the next task starts afresh
