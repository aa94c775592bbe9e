"""cwltool in a sandboxed worker: a CWL document and its job in, the output object and its files out.

cwltool never runs in the engine process (it executes the package's commands). A worker of the engine's sandbox
is started with the CWL runner's environment (``cwl_runner_site``, or the environment of ``cwl_runner_requires``
built once like an app's) ahead of the engine's packages; the package's folder is mounted read-only at
``/twin/app``, inputs from elsewhere are copied into its scratch folder, and cwltool writes the outputs there
(``/twin/scratch/out``), from where they are moved out before the worker is stopped. Commands run inside the same
sandbox, without a container (``--no-container``): no network, the system's ``/usr``, nothing of the engine.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse

from twinengine.workers.process import WorkerCrashed, WorkerError, WorkerTimeout
from twinengine.workers.protocol import decode, pickled
from twinengine.workers.sandbox import APP_DIR, SCRATCH_DIR

if TYPE_CHECKING:
    from twinengine.config import Settings
    from twinengine.workers.envs import Environments
    from twinengine.workers.interrupt import Interrupt
    from twinengine.workers.service import Workers

__all__ = ["CwlFailed", "CwlOutcome", "CwlRunner", "RunnerUnavailable", "relocate"]

_INSIDE = "twinengine.cwl._inside:run_cwltool"


class RunnerUnavailable(Exception):
    """Raised when the CWL runner's environment cannot be found or built (the reason says which)."""


class CwlFailed(Exception):
    """Raised when the worker running cwltool died, ran out of time or broke down (not when cwltool itself
    reported a failed run: that is an outcome with a non-zero ``code``)."""


@dataclass
class CwlOutcome:
    """What cwltool said: its exit code (0 success, 1 failed, 33 unsupported requirement), the output object
    with locations on this machine (under ``outdir``), and the tail of its log naming no engine path."""

    code: int
    output: Any
    log: str
    outdir: Path
    cpu_seconds: float = 0.0


class CwlRunner:
    """Runs CWL documents through cwltool, one sandboxed worker per run."""

    def __init__(self, workers: Workers, *, site: Path | None = None, requires: str = "cwltool",
                 environments: Environments | None = None, timeout: float = 300.0,
                 memory_bytes: int | None = None) -> None:
        self.workers, self._site, self.requires, self.environments = workers, site, requires, environments
        self.timeout, self.memory_bytes = timeout, memory_bytes
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, workers: Workers) -> CwlRunner:
        from twinengine.workers.envs import Environments

        return cls(workers, site=settings.cwl_runner_site, requires=settings.cwl_runner_requires,
                   environments=Environments.from_settings(settings), timeout=settings.worker_timeout.total_seconds(),
                   memory_bytes=settings.worker_memory_bytes)

    def site(self) -> Path:
        """The folder of Python packages holding cwltool (built on first use when not configured)."""
        with self._lock:
            if self._site is None:
                if self.environments is None:
                    raise RunnerUnavailable("no CWL runner: set cwl_runner_site or cwl_runner_requires")
                try:
                    self._site = self.environments.for_requires([self.requires])
                except Exception as exc:
                    raise RunnerUnavailable(f"the CWL runner's environment ({self.requires}) cannot be built: "
                                            f"{str(exc)[-600:]}") from None
            if not (self._site / "cwltool").is_dir():
                raise RunnerUnavailable(f"cwl_runner_site holds no cwltool ({self._site.name})")
            return self._site

    def run(self, folder: Path, tool: str, job: dict[str, Any] | None, *, outdir: Path,
            job_base: Path | None = None, validate: bool = False, timeout: float | None = None,
            interrupt: Interrupt | None = None, extra: list[str] | None = None) -> CwlOutcome:
        """cwltool on ``folder/tool`` (``tool`` may carry a ``#fragment``) with ``job``, whose relative file
        locations are relative to ``job_base`` (default ``folder``). The outputs end up in ``outdir`` (moved there
        from the worker's scratch folder, which is removed)."""
        site = self.site()
        folder = folder.resolve()
        worker = self.workers.start(label="cwl", code=folder, env=site, memory_bytes=self.memory_bytes)
        try:
            bwrap = worker.layout.code is not None and self.workers.sandbox.effective() == "bwrap"
            app = APP_DIR if bwrap else str(folder)
            scratch = SCRATCH_DIR if bwrap else str(worker.layout.scratch)
            staged = _Staging(folder, app, worker.layout.scratch / "in", scratch + "/in")
            inside_job = staged.job(job or {}, (job_base or folder).resolve()) if not validate else None
            request = {"tool": f"{app}/{tool}", "job": inside_job, "outdir": f"{scratch}/out", "validate": validate,
                       "extra": list(extra or [])}
            try:
                from contextlib import nullcontext

                with interrupt.serving(worker) if interrupt is not None else nullcontext():
                    reply, blobs = worker.request({"op": "process", "function": _INSIDE}, [pickled(request)],
                                                  timeout=timeout or self.timeout)
            except WorkerTimeout:
                raise CwlFailed(f"cwltool did not finish within {timeout or self.timeout:g} s and was stopped") \
                    from None
            except WorkerError as exc:
                raise CwlFailed(f"cwltool failed: {exc.remote[:600]}") from None
            except WorkerCrashed as exc:
                raise CwlFailed(f"the CWL runner's worker stopped: {str(exc)[:600]}") from None
            answer = decode(reply.get("value"), blobs)
            cpu = worker.cpu_seconds()
            outdir.mkdir(parents=True, exist_ok=True)
            produced = worker.layout.scratch / "out"
            if produced.is_dir():
                for entry in produced.iterdir():
                    shutil.move(str(entry), outdir / entry.name)
            output = relocate(answer.get("output"), f"{scratch}/out", outdir.resolve())
            log = worker.scrub(str(answer.get("log", "")))
            return CwlOutcome(code=int(answer.get("code", 1)), output=output, log=log, outdir=outdir, cpu_seconds=cpu)
        finally:
            worker.close()


class _Staging:
    """A job's File and Directory locations as the worker sees them: under the mounted folder by their place
    there, anything else copied into the worker's scratch folder (``in/``) first."""

    def __init__(self, folder: Path, inside_folder: str, into: Path, inside_into: str) -> None:
        self.folder, self.inside_folder, self.into, self.inside_into = folder, inside_folder, into, inside_into
        self.copied: dict[Path, str] = {}

    def job(self, job: dict[str, Any], base: Path) -> dict[str, Any]:
        return {k: self._value(v, base) for k, v in job.items()}

    def _value(self, value: Any, base: Path) -> Any:
        if isinstance(value, list):
            return [self._value(v, base) for v in value]
        if not isinstance(value, dict):
            return value
        if value.get("class") in ("File", "Directory"):
            return self._file(value, base)
        return {k: self._value(v, base) for k, v in value.items()}

    def _file(self, value: dict[str, Any], base: Path) -> dict[str, Any]:
        item = dict(value)
        where = item.pop("location", None) or item.pop("path", None)
        item.pop("path", None)
        if isinstance(where, str):
            host = _host_path(where, base)
            item["location"] = "file://" + quote(self.inside(host)) if host is not None else where
        for key in ("secondaryFiles", "listing"):
            if isinstance(item.get(key), list):
                item[key] = [self._value(v, base) for v in item[key]]
        return item

    def inside(self, host: Path) -> str:
        """Where the worker sees ``host``: its place in the mounted folder, else a copy in scratch."""
        resolved = host.resolve()
        if resolved == self.folder or self.folder in resolved.parents:
            return f"{self.inside_folder}/{resolved.relative_to(self.folder)}".rstrip("/")
        if resolved in self.copied:
            return self.copied[resolved]
        target = self.into / str(len(self.copied)) / resolved.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if resolved.is_dir():
            shutil.copytree(resolved, target, symlinks=False)
        elif resolved.exists():
            shutil.copyfile(resolved, target)
        inside = f"{self.inside_into}/{len(self.copied)}/{resolved.name}"
        self.copied[resolved] = inside
        return inside


def _host_path(location: str, base: Path) -> Path | None:
    """The local path a job's location names (relative to ``base``), or None for another scheme."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path if parsed.scheme else location))
        return path if path.is_absolute() else base / path
    return None


def relocate(value: Any, inside: str, outdir: Path) -> Any:
    """``value`` with every location and path under ``inside`` moved to ``outdir``."""
    if isinstance(value, list):
        return [relocate(v, inside, outdir) for v in value]
    if not isinstance(value, dict):
        return value
    moved: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("location", "path") and isinstance(item, str):
            for prefix, replacement in ((f"file://{inside}", outdir.as_uri()), (inside, str(outdir))):
                if item.startswith(prefix):
                    item = replacement + item[len(prefix):]
                    break
        moved[key] = relocate(item, inside, outdir)
    return moved

