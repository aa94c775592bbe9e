"""App code on a compute site's Dask worker (a ``dask`` site, or a ``slurm`` site's dask-jobqueue workers),
sandboxed there exactly as the engine sandboxes it on its own machine.

``RemoteApp`` is an app version's code, environment and the engine's sandbox settings as plain values, pickled
to the site. The site shares the engine's file system for app code, as HPC sites share theirs: the app's
unpacked code, its environment and its cache folder are reached by the paths the engine uses, and the Dask
worker's Python has ``twinengine`` installed. The sandbox and its limits are the engine's, never the site's,
and never weaker than the engine's own: ``auto`` is ``bwrap`` there, as it is for ``twin serve`` (a worker the
engine does not watch must not fall back to no sandbox), unless the engine itself runs app code unsandboxed: an
embedded engine (demo, tests) whose ``auto`` found no working bwrap, and said so at start-up, sends ``auto``
(bwrap where it works on the site, else unsandboxed there too, said once in the site's log), and ``none`` stays
``none``.

``WorkerHost`` (a Dask actor) holds one sandboxed worker started on the site for one job, and ``SiteWorker``
is its engine side: what a ``Worker`` offers a training run (requests, with the questions the code asks on
the way answered here, its CPU and GPUs read on the site, stopping it), over the actor's calls.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinengine.workers.process import Ask, WorkerCrashed, WorkerError, WorkerTimeout
from twinengine.workers.protocol import Message, ProtocolError
from twinengine.workers.sandbox import Limits, Sandbox, SandboxMode, gpu_devices
from twinengine.workers.service import AppWorkers, Workers

if TYPE_CHECKING:
    from twinengine.workers.containers import ContainerRuntime

__all__ = ["CALL_SECONDS", "RemoteApp", "SiteWorker", "WorkerHost"]

CALL_SECONDS = 60.0  # an actor's call that takes longer: the site is taken for lost
POLL_SECONDS = (0.02, 0.5)  # how often the engine asks a busy worker on the site how it goes: soon after a
# question (the next may follow), then less and less often while it computes


@dataclass(frozen=True)
class RemoteApp:
    """One app version's code, environment and the engine's sandbox settings, as paths and plain values (it
    is pickled to the site); equal settings find the same warm workers there."""

    sha256: str
    label: str
    code: str
    env: str | None
    cache: str | None
    image: str | None
    sandbox: SandboxMode
    hidden: tuple[str, ...]
    timeout: float
    memory_bytes: int
    processes: int
    file_bytes: int
    shm_bytes: int
    containers: ContainerRuntime = "none"
    gpus: bool = False
    warm: int = 2
    images: int = 8  # warm images kept on the site's Dask worker (the engine's warm_images)

    @classmethod
    def of(cls, app: AppWorkers, sha256: str) -> RemoteApp:
        """The engine's own settings for ``app`` (the workers it would use locally)."""
        workers, sandbox = app.workers, app.workers.sandbox
        return cls(sha256=sha256, label=app.label, code=str(app.code), env=None if app.env is None else str(app.env),
                   cache=None if app.cache is None else str(app.cache), image=app.image,
                   sandbox=_on_sites(sandbox),
                   hidden=tuple(str(p) for p in sandbox.hidden), timeout=workers.timeout,
                   memory_bytes=workers.memory_bytes, processes=sandbox.limits.processes,
                   file_bytes=sandbox.limits.file_bytes, shm_bytes=sandbox.limits.shm_bytes,
                   containers=sandbox.containers, gpus=bool(sandbox.devices), warm=max(1, workers.pool.idle),
                   images=workers.images.capacity)

    def workers(self) -> Workers:
        """The sandboxed workers of this Dask worker process for these settings, bounded as the engine bounds its
        own: kept while the process lives (the few last used), so the jobs of one app version that come to it
        fork their workers from its warm image as the engine's do."""
        with _KEPT_LOCK:
            found = _KEPT.pop(self, None)
            if found is None:
                found = self._workers()
            _KEPT[self] = found
            retired = [_KEPT.pop(next(iter(_KEPT))) for _ in range(len(_KEPT) - _KEEP)]
        for old in retired:  # its images fork no more and end with their last workers
            old.images.retire()
        return found

    def _workers(self) -> Workers:
        import tempfile

        sandbox = Sandbox(self.sandbox, hidden=[Path(p) for p in self.hidden],
                          devices=gpu_devices() if self.gpus else [], containers=self.containers,
                          limits=Limits(processes=self.processes, file_bytes=self.file_bytes,
                                        shm_bytes=self.shm_bytes))
        return Workers(sandbox=sandbox, scratch_root=Path(tempfile.gettempdir()), timeout=self.timeout,
                       memory_bytes=self.memory_bytes, idle=self.warm, images=self.images)


_KEEP = 4  # the settings (app versions) whose workers a Dask worker process keeps
_KEPT: dict[RemoteApp, Workers] = {}  # least recently used first
_KEPT_LOCK = threading.Lock()


def _on_sites(sandbox: Sandbox) -> SandboxMode:
    """The sandbox app code gets on a site: ``bwrap`` unless the engine itself runs it unsandboxed (``none``,
    or ``auto`` that found no working bwrap here, as only an embedded engine keeps it: then ``auto`` there)."""
    if sandbox.mode == "auto":
        return "auto" if sandbox.effective() == "none" else "bwrap"
    return sandbox.mode


class WorkerHost:
    """On the site's Dask worker (made there as a Dask actor): one sandboxed worker of ``spec`` for one job.
    A request runs on a thread of its own; the questions the code asks on the way (an epoch's report, a
    checkpoint) wait in a queue until the engine answers them (``step``, ``answer``): actor calls never
    block, so the Dask worker's one actor thread serves every host on it."""

    def __init__(self, spec: RemoteApp, label: str, memory_bytes: int | None) -> None:
        workers = spec.workers()
        self.worker = workers.start(label=label, code=Path(spec.code),
                                    env=None if spec.env is None else Path(spec.env), memory_bytes=memory_bytes,
                                    cache=None if spec.cache is None else Path(spec.cache), image=spec.image)
        self.started = time.monotonic()
        self._questions: queue.SimpleQueue[tuple[dict[str, Any], list[bytes]]] = queue.SimpleQueue()
        self._answers: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._result: tuple[str, Any] | None = None
        self._timeout = spec.timeout

    def begin(self, header: dict[str, Any], blobs: list[bytes], timeout: float) -> None:
        """Start ``header`` (+ ``blobs``) in the worker; ``step`` tells how it goes."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the worker on the site is busy with another request")
        self._result = None

        def run() -> None:
            try:
                self._result = ("done", self.worker.request(header, blobs, timeout=timeout, ask=self._ask))
            except WorkerError as exc:
                self._result = ("code", (exc.remote, exc.trace))
            except WorkerTimeout as exc:
                self._result = ("timeout", str(exc))
            except Exception as exc:  # crashed, broke the protocol, or could not be asked
                self._result = ("crashed", f"{type(exc).__name__}: {exc}")

        self._thread = threading.Thread(target=run, name="twin-site-request", daemon=True)
        self._thread.start()

    def _ask(self, question: dict[str, Any], blobs: list[bytes]) -> Message:
        self._questions.put((question, blobs))
        try:  # an engine that stopped asking: the worker's own timeout ends the request then
            return self._answers.get(timeout=self._timeout)
        except queue.Empty:
            raise ProtocolError("the engine did not answer the worker's question") from None

    def step(self) -> tuple[str, Any]:
        """("ask", (question, blobs)) the code waits on, ("done", (reply, blobs)), ("code", (remote, trace)),
        ("timeout", text), ("crashed", text), or ("busy", None)."""
        try:
            return "ask", self._questions.get_nowait()
        except queue.Empty:
            pass
        thread = self._thread
        if thread is not None and not thread.is_alive() and self._result is not None:
            result, self._result, self._thread = self._result, None, None
            return result
        return "busy", None

    def answer(self, message: Message) -> None:
        self._answers.put(message)

    def usage(self) -> tuple[float, int, float]:
        """(CPU seconds of the worker's processes, GPUs they hold, seconds since it started), read here."""
        return self.worker.cpu_seconds(), self.worker.gpus_held(), time.monotonic() - self.started

    def close(self) -> None:
        self.worker.close()


class SiteWorker:
    """The engine's side of a ``WorkerHost`` on a site: ``request`` (questions answered here), ``cpu_seconds``,
    ``gpus_held``, ``kill`` and ``close``, as a ``Worker`` has them. A site that stops answering makes a
    request raise ``WorkerCrashed`` naming it; ``check`` (called while a request waits) may raise sooner
    (the site's watch: ``compute.faults.SiteWatch.check``)."""

    def __init__(self, client: Any, spec: RemoteApp, *, label: str, memory_bytes: int | None, site: str,
                 check: Callable[[], None] | None = None) -> None:
        self.label, self.site, self.check = label, site, check
        self.started = time.monotonic()
        self._usage: tuple[float, int, float] = (0.0, 0, 0.0)
        self._closed = False
        try:
            self._future = client.submit(WorkerHost, spec, label, memory_bytes, actor=True, pure=False)
            with client.as_current():  # the actor's handle binds to this client, not to a default one
                self.actor = self._future.result(timeout=CALL_SECONDS)
        except Exception as exc:  # the site could not start it (its scheduler gone, no worker, no sandbox there)
            raise WorkerCrashed(f"{label}: no worker could start on site {site}: {type(exc).__name__}: {exc}") from None

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self.actor, method)(*args).result(timeout=CALL_SECONDS)
        except Exception as exc:
            raise WorkerCrashed(f"{self.label}: site {self.site} stopped answering ({type(exc).__name__}: "
                                f"{exc})") from None

    def request(self, header: dict[str, Any], blobs: list[bytes] | None = None, *, timeout: float,
                ask: Ask | None = None, note: Any = None, later: Any = (), renew: bool = False) -> Message:
        """As ``Worker.request``, the worker on the site: its questions are answered by ``ask`` here."""
        if note is not None or later:
            raise ProtocolError("a worker on a site takes whole requests, not parts")
        self._call("begin", header, list(blobs or []), timeout)
        pause = POLL_SECONDS[0]
        while True:
            kind, payload = self._call("step")
            if kind == "ask":
                if ask is None:
                    raise ProtocolError(f"the worker asked for {payload[0].get('ask')!r}, which this call does "
                                        "not answer")
                self._call("answer", ask(*payload))
                pause = POLL_SECONDS[0]
            elif kind == "done":
                reply, data = payload
                return dict(reply), list(data)
            elif kind == "code":
                raise WorkerError(*payload)
            elif kind == "timeout":
                raise WorkerTimeout(str(payload))
            elif kind == "crashed":
                raise WorkerCrashed(f"{self.label} on site {self.site}: {payload}")
            else:
                if self.check is not None:
                    self.check()
                time.sleep(pause)
                pause = min(POLL_SECONDS[1], pause * 1.5)

    def _read_usage(self) -> tuple[float, int, float]:
        if not self._closed:
            with contextlib.suppress(WorkerCrashed):  # gone with its site: what was read last is what is known
                self._usage = self._call("usage")
        return self._usage

    def cpu_seconds(self, *, kept: bool = False) -> float:
        return self._read_usage()[0]

    def gpus_held(self) -> int:
        return self._read_usage()[1]

    @property
    def alive(self) -> bool:
        return not self._closed

    def kill(self) -> None:
        self.close()

    def signal_kill(self) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._read_usage()
        self._closed = True
        with contextlib.suppress(Exception):  # its site is gone: the worker went with it
            self.actor.close().result(timeout=CALL_SECONDS)
        self._future.release()
