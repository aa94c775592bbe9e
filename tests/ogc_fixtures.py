"""pygeoapi 0.21 (OGC-certified for OGC API - Processes Part 1) on loopback with its ``echo`` process, the other
server the OGC suite's mirrored assertions run against, and the CWL runner's environment (cwltool from PyPI).

They live in virtual environments of their own (their pins clash with the engine's): ``.venv-pygeoapi``,
``.venv-cwl`` and ``.venv-eoap`` (eoap-validator), made by ``.ci/run`` and, where missing locally, by these
fixtures from the package index.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx

from helpers import REPO, free_port, stop_process, unavailable

__all__ = ["PYGEOAPI", "cwl_python", "cwl_site", "eoap_validator", "pygeoapi_python", "start_pygeoapi"]

PYGEOAPI = "pygeoapi==0.21.0"
CWLTOOL = "cwltool==3.3.20260925135507"
CWLTEST = "cwltest==2.7.20260814150058"
EOAP_VALIDATOR = "eoap-validator==0.3.1"


def _venv(name: str, env_var: str, packages: list[str], probe: str) -> Path | None:
    """The Python of ``REPO/name`` (or ``$env_var``), made from the package index where missing; None when it
    cannot be made here."""
    given = os.environ.get(env_var)
    python = Path(given) if given else REPO / name / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", f"import {probe}"], capture_output=True).returncode == 0:
        return python
    if given:
        return None
    made = subprocess.run(["python3", "-m", "venv", str(REPO / name)], capture_output=True, text=True)
    if made.returncode != 0:
        return None
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], capture_output=True,
                               text=True, timeout=900)
    return python if installed.returncode == 0 else None


def pygeoapi_python() -> Path:
    found = _venv(".venv-pygeoapi", "TWIN_PYGEOAPI_PYTHON", [PYGEOAPI], "pygeoapi")
    if found is None:
        unavailable("pygeoapi", f"no virtual environment with {PYGEOAPI} (.ci/run makes .venv-pygeoapi)")
    assert found is not None
    return found


def cwl_python() -> Path:
    found = _venv(".venv-cwl", "TWIN_CWL_PYTHON", [CWLTOOL, CWLTEST], "cwltool")
    if found is None:
        unavailable("cwltool", f"no virtual environment with {CWLTOOL} (.ci/run makes .venv-cwl)")
    assert found is not None
    return found


def eoap_validator() -> Path:
    """The ``eoap-validator`` command, from a virtual environment of its own (it pins its own cwltool and stack)."""
    found = _venv(".venv-eoap", "TWIN_EOAP_PYTHON", [EOAP_VALIDATOR], "eoap_validator")
    if found is None:
        unavailable("eoap-validator", f"no virtual environment with {EOAP_VALIDATOR} (.ci/run makes .venv-eoap)")
    assert found is not None
    return found.parent / "eoap-validator"


def cwl_site() -> Path:
    """The site-packages of the CWL runner's environment (the engine's ``cwl_runner_site``)."""
    python = cwl_python()
    where = subprocess.run([str(python), "-c", "import cwltool, os; print(os.path.dirname(os.path.dirname("
                            "cwltool.__file__)))"], capture_output=True, text=True, check=True)
    return Path(where.stdout.strip())


_CONFIG = """\
server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: http://127.0.0.1:{port}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  languages: [en-US]
  limits: {{default_items: 10, max_items: 50}}
  map: {{url: 'https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png', attribution: OSM}}
  manager:
    name: TinyDB
    connection: {jobs}
    output_dir: {outputs}
logging: {{level: ERROR}}
metadata:
  identification:
    title: echo
    description: echo for the suite
    keywords: [test]
    keywords_type: theme
    terms_of_service: https://creativecommons.org/licenses/by/4.0/
    url: https://example.org
  license: {{name: CC-BY 4.0 license, url: https://creativecommons.org/licenses/by/4.0/}}
  provider: {{name: test, url: https://example.org}}
  contact: {{name: test, position: test, address: test, city: test, stateorprovince: test, postalcode: '0',
            country: test, phone: '0', fax: '0', email: test@example.org, url: https://example.org,
            hours: always, instructions: none, role: pointOfContact}}
resources:
  echo:
    type: process
    processor: {{name: Echo}}
"""


@contextmanager
def start_pygeoapi(folder: Path) -> Iterator[str]:
    """pygeoapi serving its ``echo`` process on a free loopback port (jobs in TinyDB under ``folder``)."""
    python = pygeoapi_python()
    (folder / "outputs").mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / "pygeoapi.yml"
    config.write_text(_CONFIG.format(port=port, jobs=folder / "jobs.db", outputs=folder / "outputs"))
    openapi = folder / "openapi.yml"
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    subprocess.run([str(python.parent / "pygeoapi"), "openapi", "generate", str(config), "--output-file", str(openapi)],
                   env=env, check=True, capture_output=True, timeout=120)
    log = (folder / "pygeoapi.log").open("w")
    process = subprocess.Popen([str(python.parent / "pygeoapi"), "serve"], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/processes/echo", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"pygeoapi did not start:\n{(folder / 'pygeoapi.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process(process, timeout=10)
        log.close()
