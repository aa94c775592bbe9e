"""Workers without an engine: what a worker sends back is decoded without pickle, and anything else is
refused; the sandbox's command line keeps the engine's settings and folders out."""

from __future__ import annotations

import io
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xarray as xr

from twinengine.workers.protocol import ProtocolError, decode, encode, read_message, write_message
from twinengine.workers.sandbox import Layout, Sandbox


def round_trip(value: object) -> object:
    blobs: list[bytes] = []
    tree = encode(value, blobs)
    stream = io.BytesIO()
    write_message(stream, {"value": tree}, blobs)
    stream.seek(0)
    header, data = read_message(stream)
    return decode(header["value"], data)


def test_values_come_back_as_they_were() -> None:
    when = datetime(2026, 3, 1, 6, tzinfo=UTC)
    value = {"n": 1, "x": float("nan"), "when": when, "dt": timedelta(hours=1), "list": [1, "a", None],
             "$twin": "a user key", 3: "an int key"}
    back = round_trip(value)
    assert isinstance(back, dict) and back["when"] == when and back["dt"] == timedelta(hours=1)
    assert back["$twin"] == "a user key" and back[3] == "an int key" and back["x"] != back["x"]
    cube = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("t", "x"), name="rain", attrs={"units": "mm"},
                        coords={"t": [0, 1], "x": np.array(["a", "b", "c"], dtype=object)})
    again = round_trip(cube)
    assert isinstance(again, xr.DataArray)
    xr.testing.assert_identical(again, cube.assign_coords(x=cube.x.astype(str)))
    table = pa.table({"a": [1, 2]})
    assert round_trip(table) == table


def test_objects_that_would_need_pickle_are_refused_on_both_sides() -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            return (print, ("ran",))

    with pytest.raises(ProtocolError, match="cannot be sent back"):
        encode(Evil(), [])
    with pytest.raises(ProtocolError, match="no objects"):
        encode(np.array([Evil()], dtype=object), [])
    pickled_array = io.BytesIO()
    np.save(pickled_array, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ProtocolError, match="not plain npy"):
        decode({"$twin": "ndarray", "blob": 0}, [pickled_array.getvalue()])
    with pytest.raises(ProtocolError, match="unknown value tag"):
        decode({"$twin": "pickle", "blob": 0}, [pickle.dumps(Evil())])
    with pytest.raises(ProtocolError, match="not in the message"):
        decode({"$twin": "ndarray", "blob": 3}, [])


def test_a_frame_larger_than_allowed_is_refused() -> None:
    stream = io.BytesIO((0xFFFFFFFF).to_bytes(4, "big") + (1).to_bytes(4, "big"))
    with pytest.raises((ProtocolError, EOFError)):
        read_message(stream)


def test_a_header_nested_deeper_than_the_parser_goes_is_a_protocol_error() -> None:
    head = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ProtocolError, match="not JSON"):
        read_message(io.BytesIO(len(head).to_bytes(4, "big") + (0).to_bytes(4, "big") + head))


def test_the_sandbox_hides_the_data_dir_and_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql://secret@db/twin")
    layout = Layout(scratch=tmp_path / "scratch", code=tmp_path / "code")
    layout.scratch.mkdir()
    data_dir = Path(__import__("twinengine").__file__).parent / "data-dir-inside-a-mounted-folder"
    sandbox = Sandbox("bwrap", hidden=[data_dir])
    from twinengine.workers.sandbox import bwrap_works

    if bwrap_works() is None:
        data_dir.mkdir(exist_ok=True)
        try:
            argv, env, _cwd = sandbox.command("twinengine.workers._child", [], layout)
        finally:
            data_dir.rmdir()
        assert ["--tmpfs", str(data_dir)] == argv[argv.index(str(data_dir)) - 1: argv.index(str(data_dir)) + 1]
        assert "--unshare-all" in argv and "--cap-drop" in argv and "--unshare-user" in argv
    argv, env, _cwd = Sandbox("none", hidden=[]).command("twinengine.workers._child", [], layout)
    assert not any(k.startswith("TWIN_") for k in env) and "postgresql" not in " ".join(env.values())
    assert argv[1:3] == ["-I", "-B"]


def test_without_bwrap_serve_refuses_untrusted_code_and_an_embedded_engine_warns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bwrap cannot be uninstalled for a test: its probe is replaced by one that reports it missing."""
    from twinengine.cli.main import _sandbox_for_serving
    from twinengine.config import Settings
    from twinengine.workers import sandbox as module

    monkeypatch.setattr(module, "bwrap_works", lambda binary="bwrap": "bwrap is not installed")
    assert module.Sandbox("auto", hidden=[]).effective() == "none"  # make demo / make test on a laptop
    with pytest.raises(module.SandboxUnavailable, match="TWIN_SANDBOX=none"):
        module.Sandbox("bwrap", hidden=[]).effective()
    served = _sandbox_for_serving(Settings(data_dir=tmp_path))
    assert served.sandbox == "bwrap"  # twin serve: auto without bwrap refuses
    assert _sandbox_for_serving(Settings(data_dir=tmp_path, sandbox="none")).sandbox == "none"  # told so


def test_a_worker_outlives_the_thread_that_started_it(tmp_path: Path) -> None:
    """bwrap's --die-with-parent follows the starting thread; a request's thread ends, its warm worker stays."""
    import threading
    import time

    from helpers import need_sandbox
    from twinengine.config import Settings
    from twinengine.workers.process import Worker
    from twinengine.workers.service import Workers

    need_sandbox()
    workers = Workers.from_settings(Settings(data_dir=tmp_path / "data"))
    started: list[Worker] = []
    thread = threading.Thread(target=lambda: started.append(workers.start(label="test")))
    thread.start()
    thread.join()
    time.sleep(0.5)
    worker = started[0]
    try:
        assert worker.alive
        who = worker.request({"op": "hello"}, timeout=30)[0]
        assert who["uid"] == 65534 and int(who["capabilities"], 16) == 0  # nobody, even for a root engine
    finally:
        worker.close()


def test_an_apps_workers_get_the_gpus_and_a_udfs_never_do(tmp_path: Path) -> None:
    """No GPU on the machines this runs on: the device nodes are files standing in for /dev/nvidia*, and what
    is checked is the sandbox's command line (the mounts bubblewrap is given), not CUDA inside it."""
    from twinengine.workers.sandbox import bwrap_works, gpu_devices

    (tmp_path / "nvidia0").touch()
    (tmp_path / "nvidiactl").touch()
    (tmp_path / "null").touch()
    devices = gpu_devices(str(tmp_path))
    assert devices == [str(tmp_path / "nvidia0"), str(tmp_path / "nvidiactl")]
    if bwrap_works() is not None:
        pytest.skip(f"the sandbox's command line needs a working bwrap: {bwrap_works()}")
    sandbox = Sandbox("bwrap", hidden=[], devices=devices)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    app, _env, _cwd = sandbox.command("twinengine.workers._child", [], Layout(scratch=scratch, code=tmp_path))
    udf, _env, _cwd = sandbox.command("twinengine.workers._child", [], Layout(scratch=scratch))
    for device in devices:
        assert ["--dev-bind-try", device, device] == app[app.index(device) - 1: app.index(device) + 2]
        assert device not in udf


def test_a_worker_runs_the_engines_own_code_even_beside_another_install(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A development checkout run with an environment whose editable install is another checkout: the worker
    must still speak this engine's protocol, so its command puts this engine's package folder first."""
    from twinengine.workers import sandbox as module

    ours = module._engine_root()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    sandbox = Sandbox("none", hidden=[])
    monkeypatch.setattr(module, "_fresh_python", lambda _python: ([], f"{ours}/twinengine/__init__.py"))
    argv, _env, _cwd = sandbox.command("twinengine.workers._child", ["--memory=0"], Layout(scratch=scratch))
    assert argv[1:5] == ["-I", "-B", "-m", "twinengine.workers._child"]
    monkeypatch.setattr(module, "_fresh_python", lambda _python: ([], "/elsewhere/src/twinengine/__init__.py"))
    argv, _env, _cwd = sandbox.command("twinengine.workers._child", ["--memory=0"], Layout(scratch=scratch))
    assert argv[3:7] == ["-c", module._BOOT, ours, "twinengine.workers._child"] and argv[7] == "--memory=0"


def _modules_imported(tmp_path: Path, modules: str) -> set[str]:
    """The modules a fresh ``python -I`` holds after importing ``modules`` (comma-separated) from this checkout."""
    import json
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[2] / "src"
    probe = f"import sys, json\nimport {modules}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(src)!r})\n{probe}"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_a_worker_process_imports_only_its_own_side(tmp_path: Path) -> None:
    """Every worker starts as ``python -m twinengine.workers._child`` (1,800 of them in a run of this suite):
    it imports the protocol and what a function call needs, not the engine's pool, processes or sandbox."""
    imported = _modules_imported(tmp_path, "twinengine.workers._child, twinengine.app._context, "
                                           "twinengine.workers.effects")
    assert "twinengine.workers.protocol" in imported
    engine_side = {"twinengine.workers.pool", "twinengine.workers.process", "twinengine.workers.service",
                   "twinengine.workers.sandbox"}
    assert imported.isdisjoint(engine_side), sorted(imported & engine_side)
    from twinengine import workers

    assert workers.AppWorkers.__module__ == "twinengine.workers.service"  # the package's names, on first use
    with pytest.raises(AttributeError):
        _ = workers.NoSuchThing  # type: ignore[attr-defined]


def test_a_worker_serving_a_model_version_imports_no_store(tmp_path: Path) -> None:
    """A worker that serves a trained model version imports ``twinengine.ml.served``, which needs neither the
    engine's store nor its tables (SQLAlchemy was about 0.8 s of CPU in each such worker)."""
    imported = _modules_imported(tmp_path, "twinengine.workers._child, twinengine.ml.served, "
                                           "twinengine.ml.task_host")
    assert "twinengine.ml.served" in imported
    assert not {m for m in imported if m.split(".")[0] in ("sqlalchemy", "alembic", "mlflow")}
