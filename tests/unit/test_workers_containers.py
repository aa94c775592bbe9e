"""Apps that name a container image (``image`` in the manifest) and the container runtime that runs their
workers (``container_runtime``: podman or apptainer).

No container can start on the machines this suite runs on (podman needs cgroups and user namespaces that CI's
containers do not delegate; apptainer is not packaged by Debian), so what is checked is the engine's side: the
command line each runtime is given (what is mounted where, read-only or not, which variables, no network, the
GPUs), the choice of runtime, and, through a stand-in for podman that runs the command as podman would but
without isolation, that a worker started that way speaks the engine's protocol and runs the app's code.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from twinengine.catalog.manifest import Manifest
from twinengine.errors import SandboxUnavailable
from twinengine.workers.sandbox import Layout, Sandbox
from twinengine.workers.service import Workers

IMAGE = "ghcr.io/lab/reach-env:1.2@sha256:" + "0123456789abcdef" * 4
CHILD = "twinengine.workers._child"
APP = Path(__file__).resolve().parents[2] / "examples" / "apps" / "river-reach"
MANIFEST = {"manifest_version": 1, "name": "imaged", "version": "1.0.0", "title": "t", "domain": "testing",
            "authors": [{"name": "a"}], "license": "MIT"}


def _runtime(folder: Path, name: str, script: str = "#!/bin/sh\nexit 0\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _layout(tmp_path: Path, *, code: bool = True) -> Layout:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return Layout(scratch=scratch, code=tmp_path / "code" if code else None, cache=tmp_path / "cache", image=IMAGE)


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder first on the PATH, where the tests put the runtimes they want found."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return folder


def test_podman_runs_the_worker_in_the_image_with_nothing_of_the_engine(
        tmp_path: Path, on_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    podman = _runtime(on_path, "podman")
    data_dir = tmp_path / "data"
    monkeypatch.setenv("TWIN_SECRET_KEY", "never-inside")
    sandbox = Sandbox("bwrap", hidden=[data_dir], containers="podman", devices=["/dev/nvidia0"])
    argv, host_env, cwd = sandbox.command(CHILD, ["--memory=1024"], _layout(tmp_path))
    assert argv[:2] == [str(podman), "run"]
    for flag in ("--rm", "-i", "--network=none", "--read-only", "--user=65534:65534", "--cap-drop=all",
                 "--security-opt=no-new-privileges", "--workdir=/twin/scratch", "--device=/dev/nvidia0"):
        assert flag in argv
    assert f"--volume={tmp_path / 'code'}:/twin/app:ro" in argv
    assert f"--volume={tmp_path / 'scratch'}:/twin/scratch:rw" in argv
    assert f"--volume={tmp_path / 'scratch' / 'tmp'}:/tmp:rw" in argv
    assert f"--volume={tmp_path / 'cache'}:/twin/cache:rw" in argv
    at = argv.index(IMAGE)
    assert argv[at + 1:] == ["python", "-I", "-B", "-m", CHILD, "--memory=1024", "--path=/twin/app"]
    inside = dict(a.removeprefix("--env=").split("=", 1) for a in argv[:at] if a.startswith("--env="))
    assert inside["HOME"] == "/twin/scratch" and inside["NUMBA_CACHE_DIR"] == "/twin/cache/numba"
    assert not any(k.startswith("TWIN_") for k in inside)
    assert not any(str(data_dir) in a or "never-inside" in a for a in argv)
    assert "PATH" in host_env and not any(k.startswith("TWIN_") for k in host_env)
    assert cwd == str(tmp_path / "scratch")


def test_apptainer_runs_the_image_contained_without_network(tmp_path: Path, on_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    apptainer = _runtime(on_path, "apptainer")
    found = shutil.which  # a host with podman installed: auto would pick it first; here it is absent
    monkeypatch.setattr("twinengine.workers.containers.shutil.which",
                        lambda name, *a, **k: None if name == "podman" else found(name, *a, **k))
    sandbox = Sandbox("bwrap", hidden=[], containers="auto")  # auto: the first runtime on the PATH
    argv, _host, _cwd = sandbox.command(CHILD, [], _layout(tmp_path))
    assert argv[:2] == [str(apptainer), "exec"]
    for flag in ("--containall", "--cleanenv", "--no-home", "--net"):
        assert flag in argv
    assert argv[argv.index("--network") + 1] == "none"
    assert argv[argv.index("--pwd") + 1] == "/twin/scratch"
    binds = argv[argv.index("--bind") + 1].split(",")
    assert f"{tmp_path / 'code'}:/twin/app:ro" in binds and f"{tmp_path / 'scratch'}:/twin/scratch:rw" in binds
    assert "--nv" not in argv  # no GPU given
    at = argv.index(f"docker://{IMAGE}")
    assert argv[at + 1:at + 3] == ["python", "-I"]
    gpus = Sandbox("bwrap", hidden=[], containers="apptainer", devices=["/dev/nvidia0"])
    assert "--nv" in gpus.command(CHILD, [], _layout(tmp_path))[0]


def test_a_udf_never_runs_in_an_apps_image_and_no_runtime_means_bubblewrap(tmp_path: Path, on_path: Path) -> None:
    _runtime(on_path, "podman")
    udf, _env, _cwd = Sandbox("none", hidden=[], containers="podman").command(CHILD, [], _layout(tmp_path, code=False))
    assert udf[0] == sys.executable and IMAGE not in udf
    plain, _env, _cwd = Sandbox("none", hidden=[], containers="none").command(CHILD, [], _layout(tmp_path))
    assert plain[0] == sys.executable and IMAGE not in plain


def test_a_runtime_named_outright_must_be_there(tmp_path: Path, on_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="container_runtime is apptainer, and apptainer is not on the PATH"):
        Sandbox("none", hidden=[], containers="apptainer").command(CHILD, [], _layout(tmp_path))


@pytest.mark.parametrize("image", ["python", "python:3.12-slim", "localhost:5000/lab/env", IMAGE,
                                   "registry.example.org/a/b-c/d_e:v1.0"])
def test_the_manifest_takes_an_image_reference(image: str) -> None:
    assert Manifest.model_validate(MANIFEST | {"image": image}).image == image


@pytest.mark.parametrize("image", ["Ghcr.io/Lab/Env", "lab env", "env:", "/abs/path", "env@sha256:beef",
                                   "env;rm -rf /", "--privileged"])
def test_a_bad_image_reference_is_refused_naming_the_field(image: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Manifest.model_validate(MANIFEST | {"image": image})
    (error,) = caught.value.errors()
    assert error["loc"] == ("image",) and "not an OCI image reference" in error["msg"]


# a shell line that starts the interpreter: a #! line cannot name one in a folder with a space
STAND_IN = '''#!/bin/sh
\'\'\'\'exec "{python}" "$0" "$@" #\'\'\'
"""Stands in for podman: runs the command after the image as ``podman run`` would (its volumes at their
places, its --env variables only, in its workdir), but on this machine, without isolation."""
import json, os, re, sys
args = sys.argv[1:]
assert args[0] == "run"
volumes, env, workdir, i = {{}}, {{}}, None, 1
while args[i].startswith("-"):
    flag = args[i]
    if flag.startswith("--volume="):
        src, dst, _mode = flag.removeprefix("--volume=").rsplit(":", 2)
        volumes[dst] = src
    elif flag.startswith("--env="):
        key, value = flag.removeprefix("--env=").split("=", 1)
        env[key] = value
    elif flag.startswith("--workdir="):
        workdir = flag.removeprefix("--workdir=")
    i += 1
image, command = args[i], args[i + 1:]
with open({log!r}, "a") as log:
    log.write(json.dumps({{"image": image, "argv": sys.argv}}) + "\\n")
places = "|".join(re.escape(dst) for dst in sorted(volumes, key=len, reverse=True))
def here(text):  # a path inside (alone, or after "="), as the folder it is bound from
    return re.sub(rf"(^|=)({{places}})(?=/|$)", lambda m: m.group(1) + volumes[m.group(2)], text)
env = {{k: here(v) for k, v in env.items()}}
command = [sys.executable if command[0] == "python" else command[0], *[here(a) for a in command[1:]]]
os.chdir(here(workdir))
os.execve(command[0], command, env)
'''


def test_a_worker_started_through_the_runtime_runs_the_apps_code(tmp_path: Path, on_path: Path) -> None:
    log = tmp_path / "podman.jsonl"
    _runtime(on_path, "podman", STAND_IN.format(python=sys.executable, log=str(log)))
    workers = Workers(sandbox=Sandbox("none", hidden=[], containers="podman"), scratch_root=tmp_path,
                      timeout=60, memory_bytes=4 << 30)
    try:
        app = workers.for_app("imaged", label="river-reach", code=APP, env=None, image=IMAGE)
        processes = app.index("river_reach")
    finally:
        workers.close()
    assert {p["id"] for p in processes} == {"forecast_level"}  # imported from the app's code inside
    (started,) = [line for line in log.read_text().splitlines() if line]
    assert IMAGE in started and "--network=none" in started


def test_an_interpreter_named_through_another_folder_is_named_without_it(tmp_path: Path) -> None:
    """A bench or script run as ../.venv/bin/python from a sub-folder: the sandbox mounts only Python's
    folders, so the interpreter must be named by a path that does not pass through the sub-folder."""
    roundabout = os.path.join(os.path.dirname(sys.executable), "..", "bin", os.path.basename(sys.executable))
    sandbox = Sandbox("none", hidden=[], python=roundabout)
    argv, _env, _cwd = sandbox.command(CHILD, [], Layout(scratch=tmp_path))
    assert ".." not in Path(argv[0]).parts and os.path.samefile(argv[0], sys.executable)
