"""The sandbox wherever the engine lives: its interpreter, its packages, an app and the data dir under /tmp,
behind a path with a space and a symlinked folder; and a sandbox that cannot start is found once, at start-up,
by starting one tiny worker in the real layout."""

from __future__ import annotations

import os
import site
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import need_sandbox
from twinengine.workers.sandbox import Layout, Sandbox, SandboxMode
from twinengine.workers.service import Workers

APP = '''
import sys

from twinengine.app import app_process


@app_process(cacheable=False)
def where(path: str) -> dict:
    try:
        seen = sorted(__import__("os").listdir(path))
    except OSError as exc:
        seen = repr(exc)
    return {"executable": sys.executable, "module": __file__, "seen": seen}
'''


def python_under(folder: Path) -> Path:
    """A virtual environment in ``folder`` that imports what this one does (the engine and its packages
    through a ``.pth`` file): an engine installed there, as a clone under /tmp would have it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    lib = next((folder / "lib").glob("python3*")) / "site-packages"
    lines = [f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()]
    (lib / "engine.pth").write_text("\n".join(lines) + "\n")
    return folder / "bin" / "python"


def test_an_engine_and_an_app_under_tmp_behind_a_space_and_a_symlink_run_sandboxed(tmp_path: Path) -> None:
    """The worker's own /tmp is mounted before the Python folders: one under the host's /tmp stays visible."""
    need_sandbox()
    assert str(tmp_path).startswith("/tmp/") or os.environ.get("TMPDIR"), "pytest's folders are where /tmp is"
    real = tmp_path / "tw x"
    python_under(real / "venv")
    (tmp_path / "linked").symlink_to(real)  # a symlinked home
    python = tmp_path / "linked" / "venv" / "bin" / "python"
    data = real / "venv" / "data"  # a data dir inside a mounted folder stays hidden
    (data / "keys").mkdir(parents=True)
    (data / "keys" / "issuer.pem").write_text("secret")
    code = tmp_path / "my app"
    (code / "my_app").mkdir(parents=True)
    (code / "my_app" / "__init__.py").write_text("")
    (code / "my_app" / "procs.py").write_text(APP)
    scratch = real / "venv" / "scratch root"  # the workers' scratch folders, inside a mounted folder too
    scratch.mkdir()
    workers = Workers(sandbox=Sandbox("bwrap", hidden=[data], python=str(python)), scratch_root=scratch,
                      timeout=60, memory_bytes=4 << 30)
    try:
        udf = "def udf(data, context):\n    import sys\n    return [data + 1, sys.executable]\n"
        assert workers.run_udf(41, udf, None, timeout=60, memory_bytes=2 << 30) == [42, str(python)]
        app = workers.for_app("my-app", label="my-app", code=code, env=None)
        assert [p["id"] for p in app.index("my_app")] == ["where"]
        seen = app.process("my_app.procs:where", {"path": str(data)})
        assert seen["executable"] == str(python) and seen["module"] == "/twin/app/my_app/procs.py"
        assert seen["seen"] == []  # the data dir's place shows an empty folder, by either path
        assert app.process("my_app.procs:where", {"path": str(tmp_path / "linked" / "venv" / "data")})["seen"] == []
        assert app.process("my_app.procs:where", {"path": str(scratch)})["seen"] == []  # no other worker's scratch
    finally:
        workers.close()


FAKE_BWRAP = """#!/bin/sh
echo "run $1" >> {log}
for arg in "$@"; do
  if [ "$arg" = /twin/scratch ] && [ -e {broken} ]; then
    echo "bwrap: execvp {python}: No such file or directory" >&2
    exit 1
  fi
done
exec {bwrap} "$@"
"""


def fake_bwrap(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A bubblewrap that works for a bare probe and, once ``broken`` exists, fails on a worker's real layout
    (as the scratch hiding a venv under /tmp did); ``log`` gets a line per run."""
    import shutil

    script, log, broken = tmp_path / "fake-bwrap", tmp_path / "runs.log", tmp_path / "broken"
    script.write_text(FAKE_BWRAP.format(log=log, broken=broken, bwrap=shutil.which("bwrap"), python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log, broken


def test_the_sandbox_is_probed_once_with_a_real_worker(tmp_path: Path) -> None:
    need_sandbox()
    script, log, _broken = fake_bwrap(tmp_path)
    sandbox = Sandbox("bwrap", hidden=[tmp_path / "data"], binary=str(script))
    assert sandbox.problem() is None and sandbox.problem() is None

    def started() -> list[str]:  # what it can do (``--help``) is asked once too, and starts nothing
        runs = log.read_text().splitlines()
        assert runs.count("run --help") <= 1, runs
        return [run for run in runs if run != "run --help"]

    assert len(started()) == 2  # bubblewrap's own probe, then one worker in the real layout; then remembered
    assert Sandbox("bwrap", hidden=[tmp_path / "data"], binary=str(script)).effective() == "bwrap"
    assert len(started()) == 2


def test_a_worker_may_not_make_a_user_namespace_where_bubblewrap_can_refuse_it(tmp_path: Path) -> None:
    """bubblewrap 0.8 and newer (Debian 12's, which CI installs) refuses the sandbox a user namespace of its
    own; an older one, which does not know the option, still starts workers (without it)."""
    import shutil

    need_sandbox()
    real = shutil.which("bwrap")
    assert real is not None
    if "--disable-userns" not in subprocess.run([real, "--help"], capture_output=True, text=True, check=False).stdout:
        pytest.skip("this bubblewrap is older than 0.8: it cannot refuse a user namespace")
    (tmp_path / "scratch" / "tmp").mkdir(parents=True)
    layout = Layout(scratch=tmp_path / "scratch")
    assert "--disable-userns" in Sandbox("bwrap", hidden=[])._bwrap(layout)
    older = tmp_path / "bwrap-0.6"
    older.write_text("#!/bin/sh\necho 'usage: bwrap [OPTIONS...] [--] COMMAND [ARGS...]'\n")
    older.chmod(older.stat().st_mode | stat.S_IXUSR)
    assert "--disable-userns" not in Sandbox("bwrap", hidden=[], binary=str(older))._bwrap(layout)


def test_a_sandbox_that_cannot_start_is_said_once_naming_the_cause_and_the_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from twinengine.errors import SandboxUnavailable
    from twinengine.workers import sandbox as module

    need_sandbox()
    monkeypatch.setattr(module, "_WARNED", set())
    script, _log, broken = fake_bwrap(tmp_path)
    broken.touch()
    sandbox = Sandbox("bwrap", hidden=[], binary=str(script))
    problem = sandbox.problem()
    assert problem is not None and f"execvp {sys.executable}: No such file" in problem
    with pytest.raises(SandboxUnavailable, match="TWIN_SANDBOX=none") as refused:  # what a caller is told
        sandbox.effective()
    assert "execvp <python>/bin/python" in str(refused.value) and sys.executable not in str(refused.value)
    assert sandbox.announce() is not None and sandbox.announce() is not None
    said = capsys.readouterr().err  # the admin, once, with the engine's own path
    assert said.count(f"execvp {sys.executable}") == 1 and "TWIN_SANDBOX=none" in said
    assert Sandbox("auto", hidden=[], binary=str(script)).effective() == "none"  # an embedded engine, warned


WITHOUT_BWRAP = """
import sys
from pathlib import Path

from twinengine.cli.main import _sandbox_for_serving
from twinengine.config import Settings
from twinengine.workers.sandbox import Sandbox

settings = Settings(data_dir=Path(sys.argv[2]))
if sys.argv[1] == "serve":
    settings = _sandbox_for_serving(settings)
for _start in range(2):  # what the engine's start says again after twin serve's own check
    Sandbox.from_settings(settings).announce()
"""


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_without_bwrap_on_the_path_the_sandbox_warning_is_said_once(tmp_path: Path, command: str) -> None:
    """Where no handler is configured, logging's last resort would print the warning a second time."""
    env = {**os.environ, "PATH": str(tmp_path)}  # a PATH without bubblewrap
    env.pop("TWIN_SANDBOX", None)
    ran = subprocess.run([sys.executable, "-c", WITHOUT_BWRAP, command, str(tmp_path / "data")], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    assert ran.stderr.count("bwrap is not installed") == 1, ran.stderr
    assert "TWIN_SANDBOX=none" in ran.stderr


def test_twin_serve_and_the_runtime_start_probe_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``twin serve`` checks the sandbox as it starts (on a thread), and a runtime (the demo's too) when it
    starts."""
    from twinengine.cli.main import SANDBOX_CHECK, _sandbox_for_serving
    from twinengine.config import Settings
    from twinengine.runtime import Runtime

    asked: list[str] = []
    monkeypatch.setattr(Sandbox, "announce", lambda self: asked.append(self.mode))
    assert _sandbox_for_serving(Settings(data_dir=tmp_path / "a")).sandbox == "bwrap"
    for thread in threading.enumerate():
        if thread.name == SANDBOX_CHECK:
            thread.join(60)
    assert asked == ["bwrap"]
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "b"))
    try:
        runtime.start()
    finally:
        runtime.close()
    assert asked == ["bwrap", "auto"]


LEAKY = '''
import os
import sys

import twinengine


def boom(x: int) -> None:
    raise RuntimeError(f"{twinengine.__file__} | {os.getcwd()} | {sys.executable} | {sys.path} | {os.__file__}")
'''


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_an_error_coming_back_from_a_worker_names_no_engine_path(tmp_path: Path, mode: SandboxMode) -> None:
    """Tracebacks and messages are given back to developers (a 422 body, a dead letter): the engine's folders
    in them are replaced by the names the worker sees them by, or by neutral ones."""
    from twinengine.workers import sandbox as module
    from twinengine.workers.process import WorkerError

    if mode == "bwrap":
        need_sandbox()
    code = tmp_path / "code"
    (code / "leaky").mkdir(parents=True)
    (code / "leaky" / "__init__.py").write_text("")
    (code / "leaky" / "fns.py").write_text(LEAKY)
    workers = Workers(sandbox=Sandbox(mode, hidden=[]), scratch_root=tmp_path, timeout=60, memory_bytes=4 << 30)
    try:
        with pytest.raises(WorkerError) as raised:
            workers.for_app("leaky", label="leaky", code=code, env=None).process("leaky.fns:boom", {"x": 1})
    finally:
        workers.close()
    said = raised.value.remote + raised.value.trace
    assert "<engine>/twinengine/__init__.py" in said and "/twin/scratch" in said and "<python>" in said
    engine_paths = [module._engine_root(), sys.prefix, os.path.realpath(sys.base_prefix), str(tmp_path)]
    assert not [p for p in engine_paths if p in said], said
    assert raised.value.place == "leaky/fns.py:9"


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_a_worker_s_threads_wait_asleep(tmp_path: Path, mode: SandboxMode) -> None:
    """OpenMP's threads (a PyTorch training's) sleep while they wait in every worker, sandboxed or not: spinning,
    calo-fastsim's trainings beside three busy processes took 442 s against 117 s (bench/training_under_load.py
    measures the policies side by side)."""
    if mode == "bwrap":
        need_sandbox()
    (tmp_path / "scratch").mkdir()
    workers = Workers(sandbox=Sandbox(mode, hidden=[tmp_path / "data"]), scratch_root=tmp_path / "scratch",
                      timeout=60, memory_bytes=2 << 30)
    try:
        udf = "def udf(data, context):\n    import os\n    return [os.environ.get(k) for k in data]\n"
        assert workers.run_udf(["OMP_WAIT_POLICY", "OMP_NUM_THREADS"], udf, None, timeout=60,
                               memory_bytes=2 << 30) == ["PASSIVE", "1"]
    finally:
        workers.close()
