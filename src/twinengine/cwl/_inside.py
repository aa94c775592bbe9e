"""Inside a sandboxed worker: run cwltool on a package and a job, as ``python -m cwltool`` would.

This module imports nothing of the engine: it is called through the worker protocol (``op: process``) with the
CWL runner's environment first on the import path, where cwltool and its pinned dependencies live.
"""

from __future__ import annotations

import io
import json
import logging
import os
from typing import Any

__all__ = ["run_cwltool"]

MAX_LOG = 20_000


def run_cwltool(tool: str, job: dict[str, Any] | None, outdir: str, *, validate: bool = False,
                extra: list[str] | None = None) -> dict[str, Any]:
    """cwltool on ``tool`` (a path the worker sees) with ``job``: its exit code, the output object and the tail of
    its log. ``validate``: only check the document (``--validate``). Containers are never used here."""
    import cwltool.main  # type: ignore[import-not-found]  # the CWL runner's environment, not the engine's

    scratch = os.getcwd()
    tmp = os.path.join(scratch, "tmp")
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(outdir, exist_ok=True)
    args = ["--disable-color", "--no-container", "--outdir", outdir, "--tmpdir-prefix", tmp + "/",
            "--tmp-outdir-prefix", tmp + "/", "--disable-pull", *(extra or [])]
    if validate:
        args += ["--validate", tool]
    else:
        job_path = os.path.join(scratch, "job.json")
        with open(job_path, "w") as fh:
            json.dump(job or {}, fh)
        args += [tool, job_path]
    _python_on_path(scratch)
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    code = cwltool.main.main(args, stdout=out, stderr=err, logger_handler=handler)
    text = out.getvalue()
    output: Any = None
    if code == 0 and not validate:
        try:
            output = json.loads(text)
        except ValueError:
            output = None
    log = err.getvalue()
    return {"code": int(code), "output": output, "stdout": text[-MAX_LOG:], "log": log[-MAX_LOG:]}


def _python_on_path(scratch: str) -> None:
    """Commands named ``python`` find the system's Python 3 where the system names it ``python3`` only."""
    import shutil

    if shutil.which("python") is not None:
        return
    system = shutil.which("python3")
    if system is None:
        return
    folder = os.path.join(scratch, "bin")
    os.makedirs(folder, exist_ok=True)
    link = os.path.join(folder, "python")
    if not os.path.lexists(link):
        os.symlink(system, link)
    os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
