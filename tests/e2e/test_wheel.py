"""The release a provider pins: ``python -m build`` makes a wheel and an sdist that hold what an engine needs
(migrations, templates, the portal's files, the reference apps) and nothing of a developer's checkout, and the
wheel installed in a fresh virtualenv outside the repository runs ``twin demo`` by itself (CI: it installs the
pinned set and tells the whole story, minutes)."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from helpers import REPO
from twinengine._version import __version__
from twinengine.demo.runner import APP_CHAPTERS

pytestmark = pytest.mark.slow


@functools.cache
def built() -> tuple[Path, Path]:
    """The wheel and the sdist of this checkout, built once per test process (offline: --no-isolation uses the
    build backend installed with the dev extras)."""
    out = Path(tempfile.mkdtemp(prefix="twin-dist-"))
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheel = out / f"twinengine-{__version__}-py3-none-any.whl"
    sdist = out / f"twinengine-{__version__}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(out.iterdir())
    return wheel, sdist


def test_the_wheel_carries_what_an_engine_needs() -> None:
    wheel, _ = built()
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO / "src" / "twinengine"
    migrations = {f"twinengine/store/migrations/versions/{p.name}"
                  for p in (package / "store" / "migrations" / "versions").glob("*.py")}
    assert migrations and migrations <= names
    assert {"twinengine/store/migrations/env.py", "twinengine/store/migrations/script.py.mako",
            "twinengine/py.typed", "twinengine/ui/static/index.html"} <= names
    portal = {f"twinengine/{p.relative_to(package).as_posix()}" for p in (package / "ui" / "static").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert portal <= names, sorted(portal - names)[:10]
    templates = {f"twinengine/{p.relative_to(package).as_posix()}" for p in (package / "templates").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    assert any(t.endswith("twinapp.yaml.tmpl") for t in templates) and templates <= names
    for app in APP_CHAPTERS:  # every story `twin demo --app` tells
        assert f"twinengine/_examples/{app}/twinapp.yaml" in names, app
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("tests/", ".venv"))]
    metadata = zipfile.ZipFile(wheel).read(f"twinengine-{__version__}.dist-info/METADATA").decode()
    assert f"Version: {__version__}" in metadata and "License-Expression: Apache-2.0" in metadata


def test_the_sdist_holds_the_sources_and_no_local_leftovers() -> None:
    _, sdist = built()
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"pyproject.toml", "constraints.txt", "Makefile", "README.md", "CHANGELOG.md", "LICENSE",
            "src/twinengine/_version.py", "examples/apps/river-reach/twinapp.yaml"} <= names
    assert not [n for n in names if n.startswith(".venv") or "/.venv" in n or "__pycache__" in n
                or "node_modules" in n], "a local environment or cache in the sdist"


@pytest.mark.ci_only
@pytest.mark.sandbox
@pytest.mark.timeout(1500)
def test_twin_demo_runs_from_the_wheel_in_a_fresh_virtualenv() -> None:
    """Installed with its pinned dependencies (and the ml extra, for the model chapters) into a virtualenv that
    shares nothing with the repository, run from a folder outside it. The virtualenv is made under the home
    folder rather than /tmp, where an engine's workers mount their own /tmp."""
    wheel, _ = built()
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv is not None, "uv (a dev dependency) installs the pinned set"
    place = Path(tempfile.mkdtemp(prefix="twin-wheel-", dir=Path.home()))
    try:
        venv = place / "venv"
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=300)
        links = [f"--find-links={p}" for p in find_links()]
        install = subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                                  "-c", str(REPO / "constraints.txt"), *links, f"{wheel}[ml]"],
                                 capture_output=True, text=True, timeout=900, check=False)
        assert install.returncode == 0, install.stderr[-3000:]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
        where = subprocess.run([str(venv / "bin" / "python"), "-c", "import twinengine; print(twinengine.__file__)"],
                               capture_output=True, text=True, cwd=place, env=env, check=True, timeout=120)
        assert where.stdout.strip().startswith(str(venv)), where.stdout  # the wheel's code, not the checkout's
        version = subprocess.run([str(venv / "bin" / "twin"), "--version"], capture_output=True, text=True,
                                 cwd=place, env=env, check=True, timeout=120)
        assert version.stdout.strip() == f"twinengine {__version__}"
        # Every chapter, over 3 simulated hours (as .ci/run's demo without bubblewrap): what is checked here is that
        # the wheel carries what each chapter needs; the shared demo run covers the full day.
        demo = subprocess.run([str(venv / "bin" / "twin"), "demo", "--hours", "3", "--data-dir", str(place / "data")],
                              capture_output=True, text=True, cwd=place, env=env, timeout=1200, check=False)
        printed = demo.stdout + demo.stderr
        assert demo.returncode == 0, printed[-5000:]
        assert "published river-reach@0.1.0" in printed and "time travel" in printed, printed[-3000:]
    finally:
        shutil.rmtree(place, ignore_errors=True)


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("sbom_generate", REPO / "deploy" / "sbom" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_set() -> dict[str, str]:
    """What installing the wheel brings (no extras), from the installed packages' own metadata: name -> version."""
    found: dict[str, str] = {}
    todo: list[tuple[str, str]] = [("twinengine", "")]
    while todo:
        name, extra = todo.pop()
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
                continue
            key = _normal(requirement.name)
            wanted = [(requirement.name, e) for e in requirement.extras]
            if key not in found:
                found[key] = importlib.metadata.version(requirement.name)
                wanted.append((requirement.name, ""))
            todo += wanted
    return found


def test_the_sbom_lists_the_wheels_pinned_set() -> None:
    """deploy/sbom/twinengine-wheel.cdx.json is CycloneDX and in step with the dependencies: after a change to
    them, `.venv/bin/python deploy/sbom/generate.py` writes it (and deploy/licences.md) again."""
    generate = _generator()
    sbom = json.loads(generate.SBOM.read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    listed = {_normal(c["name"]): c["version"] for c in sbom["components"]}
    assert listed == runtime_set(), "the SBOM is out of step with the dependencies: run deploy/sbom/generate.py"
    licences = generate.LICENCES.read_text()
    assert all(f"| {c['name']} | {c['version']} |" in licences for c in sbom["components"])


def test_no_gpl_code_in_the_engines_own_distribution() -> None:
    """The wheel's own files carry no GPL text or SPDX tag, its licence is Apache-2.0, and its dependencies are
    under no GPL/AGPL-only licence but those named in deploy/licences.md (each with where it comes from)."""
    wheel, _ = built()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            text = archive.read(name).decode("utf-8", errors="ignore")
            assert not re.search(r"GNU (Affero )?General Public License|SPDX-License-Identifier:\s*A?GPL", text), name
    generate = _generator()
    sbom = json.loads(generate.SBOM.read_text())
    strong = {c["name"].lower() for c in sbom["components"] if generate.strong_copyleft(generate.licence_of(c))}
    assert strong <= set(generate.KNOWN_GPL), f"GPL/AGPL-only dependencies: {sorted(strong - set(generate.KNOWN_GPL))}"
    assert all(f"**{name}**" in generate.LICENCES.read_text() for name in generate.KNOWN_GPL)
    assert generate.strong_copyleft("GPL-3.0-only") and not generate.strong_copyleft("LGPL-3.0-only")
    assert not generate.strong_copyleft("GPL-2.0-or-later OR MIT")


def find_links() -> list[str]:
    """Where pip finds local wheels (PyTorch's CPU build on these machines), as the Makefile passes them to uv."""
    configured = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"],
                                capture_output=True, text=True, check=False).stdout
    return (configured or os.environ.get("PIP_FIND_LINKS", "")).split()
