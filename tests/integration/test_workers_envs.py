"""App environments on real parts: two apps pinning different versions of one library both run, each in
its own environment built once per lock, never in the engine's; requirements that cannot be resolved
refuse the publish naming ``requires[i]``. Environments are installed by pip and by uv. The package index is a
folder of wheels the test builds (no network: ``--no-index --find-links``)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import zipfile
from pathlib import Path
from typing import Any

import pytest

from helpers import Engine, make_app
from streams_fixtures import eventually
from twinengine.config import Settings
from twinengine.errors import ValidationFailed

LIB = "twintestlib"
FUNCTIONS = f'''
import {LIB}


def report(ctx, records):
    ctx.update_state(config={{"version": {LIB}.VERSION, "where": {LIB}.__file__}})
'''
PROCESSES = f'''
import {LIB}

from twinengine.app import app_process


@app_process(cacheable=False)
def lib_version() -> str:
    return {LIB}.VERSION
'''


def wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel of ``name`` whose ``VERSION`` is ``version`` (built by hand: a zip with its RECORD)."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: twinengine-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for path, data in files.items()) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name_in, data in files.items():
            archive.writestr(name_in, data)
    return path


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The embedded store only: environments do not depend on it, and each publish resolves with pip; the
    installer is pip unless a test asks for uv (``indirect`` parametrisation)."""
    wheels = tmp_path / "wheels"
    for version in ("1.0", "2.0"):
        wheel(wheels, LIB, version)
    return Settings(data_dir=tmp_path / "data", envs_index_url="none", envs_find_links=str(wheels),
                    envs_installer=getattr(request, "param", "pip"))


INSTALLERS = pytest.mark.parametrize("settings", ["pip", "uv"], indirect=True)


def pinned_app(root: Path, name: str, version: str, requires: list[str]) -> Path:
    package = name.replace("-", "_")
    return make_app(root, name=name, version=version, manifest={
        "requires": requires,
        "streams": {"readings": {"fields": {"time": {"type": "timestamp"}, "level": {"type": "float"}}}},
        "functions": {"report": {"entrypoint": f"{package}.fns:report", "stream": "readings"}}},
        files={f"{package}/fns.py": FUNCTIONS, f"{package}/procs.py": PROCESSES})


@pytest.mark.sandbox
@pytest.mark.slow
@INSTALLERS
def test_two_apps_pin_different_versions_of_a_library_side_by_side(engine: Engine, tmp_path: Path,
                                                                   settings: Settings) -> None:
    ada = engine.as_role("ada", "developer")
    ada.publish_app(pinned_app(tmp_path, "old-app", "1.0.0", [f"{LIB}==1.0"]))
    ada.publish_app(pinned_app(tmp_path, "new-app", "1.0.0", [f"{LIB}==2.0"]))
    envs = engine.runtime.app_code.envs
    assert envs is not None and envs.builds == 2 and envs.installer == settings.envs_installer
    uma = engine.as_role("uma", "user")
    for app, twin in (("old-app", "old"), ("new-app", "new")):
        uma.create_twin(f"{app}@1.0.0", twin, {"station": "S1"})
        uma.streams.append(twin, "readings", [{"time": "2026-03-01T00:00:00Z", "level": 1.0}])

    def seen(twin: str) -> Any:
        config = uma.get_state(twin).reported.get("config")
        return config.value if config is not None else None

    old, new = eventually(lambda: seen("old"), timeout=60), eventually(lambda: seen("new"), timeout=60)
    assert old["version"] == "1.0" and new["version"] == "2.0"
    assert old["where"].startswith("/twin/env/") and new["where"].startswith("/twin/env/")  # each its own
    for app, expected in (("old-app", "1.0"), ("new-app", "2.0")):
        graph = {"process_graph": {"v": {"process_id": "lib_version", "namespace": app, "arguments": {},
                                         "result": True}}}
        run = uma.workflows.submit(graph, sync=True)
        assert run.status == "finished" and run.value == expected, run.error
    assert importlib.util.find_spec(LIB) is None  # the engine's own environment never got it


@pytest.mark.slow
@INSTALLERS
def test_an_environment_is_built_once_per_lock(engine: Engine, tmp_path: Path, settings: Settings) -> None:
    ada = engine.as_role("ada", "developer")
    ada.publish_app(pinned_app(tmp_path, "old-app", "1.0.0", [f"{LIB}==1.0"]))
    ada.publish_app(pinned_app(tmp_path, "old-app", "1.0.1", [f"{LIB}==1.0"]))  # same lock: same environment
    envs = engine.runtime.app_code.envs
    assert envs is not None and envs.builds == 1 and envs.installer == settings.envs_installer
    assert len([p for p in envs.root.iterdir() if (p / ".complete").is_file()]) == 1


@pytest.mark.parametrize(("requires", "loc"), [([f"{LIB}==1.0", f"{LIB}-missing==1.0"], "requires[1]"),
                                               ([f"{LIB}==9.9"], "requires[0]"),
                                               (["not a requirement!"], "requires[0]"),
                                               ([f"{LIB} @ file:///etc/passwd"], "requires[0]")])
def test_requirements_that_cannot_be_resolved_refuse_the_publish(engine: Engine, tmp_path: Path,
                                                                 requires: list[str], loc: str) -> None:
    ada = engine.as_role("ada", "developer")
    with pytest.raises(ValidationFailed) as info:
        ada.publish_app(pinned_app(tmp_path, "bad-app", "1.0.0", requires))
    assert info.value.status == 422 and info.value.details[0]["loc"] == loc, info.value.details
    assert ada.list_apps().total == 0  # nothing half-written
