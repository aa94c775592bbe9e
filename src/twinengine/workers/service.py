"""The engine's workers: UDFs in a fresh sandbox per call, app code in warm workers per app version.

``Workers`` is built once per runtime from the settings. It is the only way the engine runs code it did
not write: ``run_udf`` for a user's UDF, ``for_app(...)`` for an app's functions, processes and the
indexing of its package at publish time.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinengine.workers.effects import CallEffects, Malformed, read_effects
from twinengine.workers.images import UDF, WORKER, WarmImages, model_preload
from twinengine.workers.interrupt import Interrupt
from twinengine.workers.pool import WorkerPool
from twinengine.workers.process import Ask, Note, Worker, WorkerCrashed
from twinengine.workers.protocol import PART_CALLS, Message, ProtocolError, decode, pickled
from twinengine.workers.sandbox import Layout, Sandbox, SandboxMode
from twinengine.workers.zygote import ImageFailed

Spent = Callable[[float], None]  # told the CPU seconds (or GPU-seconds) a call used in its worker

if TYPE_CHECKING:
    from twinengine.config import Settings

__all__ = ["SERVING", "AppWorkers", "GpuCall", "Workers"]

log = logging.getLogger("twinengine.workers")

_START_SECONDS = 60.0
# The shelf of the workers that serve predictions: apart from the one functions and processes share, so that a
# burst of function batches never stops (or takes) the worker that holds a twin's warm model.
SERVING = "serving"


class Workers:
    def __init__(self, *, sandbox: Sandbox, scratch_root: Path, timeout: float, memory_bytes: int,
                 idle: int = 4, effect_max_bytes: int | None = 1 << 20, images: int = 8,
                 images_after: int = 1) -> None:
        """``images``: warm images kept (0: every worker starts fresh); ``images_after``: workers of a kind
        started fresh before its image is made (see ``workers/images.py``)."""
        self.sandbox, self.scratch_root = sandbox, scratch_root
        self.timeout, self.memory_bytes = timeout, memory_bytes
        self.effect_max_bytes = effect_max_bytes  # the most one effect of a function call may take
        self.pool = WorkerPool(idle)
        self.images = WarmImages(sandbox, scratch_root, capacity=images, after=images_after)

    @classmethod
    def from_settings(cls, settings: Settings) -> Workers:
        return cls(sandbox=Sandbox.from_settings(settings),
                   scratch_root=Path(tempfile.gettempdir()), timeout=settings.worker_timeout.total_seconds(),
                   memory_bytes=settings.worker_memory_bytes, idle=settings.warm_workers,
                   effect_max_bytes=settings.function_effect_max_bytes or None, images=settings.warm_images)

    @property
    def mode(self) -> SandboxMode:
        return self.sandbox.mode

    def start(self, *, label: str, code: Path | None = None, env: Path | None = None,
              memory_bytes: int | None = None, cache: Path | None = None, image: str | None = None,
              preload: tuple[str, ...] = UDF) -> Worker:
        """A new worker in its sandbox, with a fresh scratch folder, answering (or ``WorkerCrashed``): forked
        from the warm image of its kind (``preload``: what that image imports once) where one is kept, else
        started fresh. Its memory limit bounds each of its processes' address space and what they hold
        together. An app's worker on a machine whose GPUs it is given has no address-space limit (CUDA reserves
        more virtual memory than any sensible limit, and would fail to start under one), only the bound on
        what its processes hold."""
        limit = self.memory_bytes if memory_bytes is None else memory_bytes
        per_process = 0 if code is not None and self.sandbox.devices else limit
        warm = self.images.image_for(code=code, env=env, cache=cache, preload=preload, image=image, label=label)
        worker: Worker | None = None
        if warm is not None:
            try:
                worker = Worker(self.sandbox, Layout(scratch=warm.root, code=code, env=env, cache=cache),
                                memory_bytes=per_process, label=label, tree_bytes=limit, image=warm)
            except ImageFailed as exc:  # retired (its workers go on), started again for the next worker
                log.warning("the warm image of %s could not fork a worker (%s): this one starts fresh", label, exc)
                warm.close()
        if worker is None:
            scratch = Path(tempfile.mkdtemp(prefix="twin-scratch-", dir=self.scratch_root))
            try:
                worker = Worker(self.sandbox, Layout(scratch=scratch, code=code, env=env, cache=cache, image=image),
                                memory_bytes=per_process, label=label, tree_bytes=limit)
            except BaseException:
                import shutil

                shutil.rmtree(scratch, ignore_errors=True)
                raise
        try:
            worker.request({"op": "hello"}, timeout=_START_SECONDS)
        except BaseException:
            worker.close()
            raise
        return worker

    def run_udf(self, data: Any, code: str, context: Any, *, timeout: float, memory_bytes: int,
                cpu: Spent | None = None, interrupt: Interrupt | None = None) -> Any:
        """A user's UDF in a sandbox of its own (never shared with another call or user); ``cpu`` is told the
        CPU seconds the sandbox used, its start included; ``interrupt`` may stop it from another thread (its
        run canceled: the worker is killed, the call raises ``WorkerCrashed``)."""
        worker = self.start(label="run_udf", memory_bytes=memory_bytes)
        try:
            with interrupt.serving(worker) if interrupt is not None else nullcontext():
                reply, blobs = worker.request({"op": "udf"},
                                              [pickled({"data": data, "code": code, "context": context})],
                                              timeout=timeout)
            if cpu is not None:
                cpu(worker.cpu_seconds())
        finally:
            worker.close()
        return decode(reply.get("value"), blobs)

    def for_app(self, key: Hashable, *, label: str, code: Path, env: Path | None,
                cache: Path | None = None, image: str | None = None,
                preloads: dict[str, tuple[str, ...]] | None = None) -> AppWorkers:
        """The warm workers of one app version (``key``: its archive checksum and environment); ``cache``: a
        folder of that version's own that its workers may write and keep (compiled kernels); ``image``: the
        app's container image (see ``workers/containers.py``); ``preloads``: what its warm images import, per
        kind of work (``calls``: functions and processes; ``models``: training and serving)."""
        return AppWorkers(self, key, label=label, code=code, env=env, cache=cache, image=image, preloads=preloads)

    def close(self) -> None:
        self.pool.close()
        self.images.close()


class AppWorkers:
    """Calls into one app version's code, each in a warm worker of that version."""

    def __init__(self, workers: Workers, key: Hashable, *, label: str, code: Path, env: Path | None,
                 cache: Path | None = None, image: str | None = None,
                 preloads: dict[str, tuple[str, ...]] | None = None) -> None:
        self.workers, self.key, self.label, self.code, self.env = workers, key, label, code, env
        self.cache, self.image = cache, image
        self.preloads = {"calls": WORKER, "models": model_preload(["pytorch"])} | (preloads or {})

    def lease(self, prefer: Hashable = None, shelf: str | None = None) -> AbstractContextManager[Worker]:
        """A warm worker of this version; ``shelf`` names a set of warm workers of their own (``SERVING``)."""
        key = self.key if shelf is None else (self.key, shelf)
        preload = self.preloads["models" if shelf == SERVING else "calls"]
        return self.workers.pool.lease(key, lambda: self.workers.start(label=self.label, code=self.code,
                                                                       env=self.env, cache=self.cache,
                                                                       image=self.image, preload=preload), prefer)

    @contextmanager
    def dedicated(self, *, label: str, memory_bytes: int | None = None) -> Iterator[Worker]:
        """A worker of this version for one long job (a training run): its own sandbox and scratch folder
        (forked from the version's warm image of its models where one is kept), never pooled, stopped
        afterwards."""
        worker = self.workers.start(label=label, code=self.code, env=self.env, memory_bytes=memory_bytes,
                                    cache=self.cache, image=self.image, preload=self.preloads["models"])
        try:
            yield worker
        finally:
            worker.close()

    def call(self, header: dict[str, Any], blobs: list[bytes] | None = None, *, timeout: float | None = None,
             ask: Ask | None = None, prefer: Hashable = None, interrupt: Interrupt | None = None,
             shelf: str | None = None, cpu: Spent | None = None, note: Note | None = None,
             renew: bool = False, later: Iterable[Message] = (), gpu: Spent | None = None) -> Message:
        """One request to a warm worker (of ``shelf``, see ``lease``); ``interrupt`` may stop it from another
        thread (``Interrupt.fire``); ``cpu`` is told the CPU seconds the request used in the worker, ``gpu``
        its GPU-seconds (``GpuCall``); ``note``, ``renew`` and ``later`` as ``Worker.request`` takes them."""
        with self.lease(prefer, shelf) as worker, interrupt.serving(worker) if interrupt else nullcontext():
            before = worker.cpu_seconds() if cpu is not None else 0.0
            held = GpuCall(worker) if gpu is not None else None
            answer = worker.request(header, blobs, timeout=timeout or self.workers.timeout, ask=ask, note=note,
                                    renew=renew, later=later)
            if cpu is not None:
                cpu(max(0.0, worker.cpu_seconds() - before))
            if gpu is not None and held is not None:
                gpu(held.seconds())
            return answer

    def index(self, package: str) -> list[dict[str, Any]]:
        """The ``@app_process`` functions of ``package``: [{id, function, spec}] (imported in a worker)."""
        reply, _ = self.call({"op": "index", "package": package})
        found = reply.get("processes")
        if not isinstance(found, list) or not all(isinstance(p, dict) for p in found):
            raise ValueError("the worker's index of app processes is malformed")
        return found

    def check_entrypoints(self, entrypoints: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
        """(loc, why) of each ``(loc, kind, "module:attr")`` entrypoint the engine could not call (imported in
        a worker; kinds in ``twinengine.app._entrypoints.CALLS``)."""
        reply, _ = self.call({"op": "entrypoints", "entrypoints": [list(e) for e in entrypoints]})
        found = reply.get("problems")
        if not isinstance(found, list) or not all(isinstance(p, list) and len(p) == 2 for p in found):
            raise ValueError("the worker's check of entrypoints is malformed")
        return [(str(loc), str(why)) for loc, why in found]

    def process(self, function: str, arguments: dict[str, Any], *, timeout: float | None = None,
                interrupt: Interrupt | None = None, cpu: Spent | None = None,
                parts: Callable[[Any], None] | None = None,
                more: tuple[str, int, Iterable[list[Any]]] | None = None, gpu: Spent | None = None) -> Any:
        """``function(**arguments)`` in a warm worker; ``cpu`` is told the CPU seconds the call used there,
        ``gpu`` its GPU-seconds.
        With ``parts``, the function is given ``part`` too: each value it sends that way is decoded and handed
        to ``parts`` (on this thread) while it goes on, and each renews ``timeout``. ``more`` (name, n, lists):
        the argument ``name`` (a list) goes on with the n lists given, made and sent while the function
        starts on its first items (it takes that argument as an iterable)."""
        header: dict[str, Any] = {"op": "process", "function": function}
        later: Iterable[Message] = ()
        if more is not None:
            name, count, lists = more
            header.update(more=count, more_into=name)
            later = (({"op": "calls"}, [pickled(items)]) for items in lists)
        note: Note | None = None
        if parts is not None:
            header["parts"] = True

            def note(reply: dict[str, Any], blobs: list[bytes]) -> None:
                if reply.get("note") != "part":
                    raise ProtocolError(f"the worker sent a note {reply.get('note')!r} where parts were expected")
                parts(decode(reply.get("value"), blobs))

        reply, blobs = self.call(header, [pickled(arguments)], timeout=timeout, interrupt=interrupt, cpu=cpu,
                                 note=note, renew=parts is not None, later=later, gpu=gpu)
        return decode(reply.get("value"), blobs)

    def functions(self, header: dict[str, Any], calls: list[list[dict[str, Any]]], *,
                  ask: Callable[[dict[str, Any]], Any], prefer: Hashable = None, state: Callable[[], Any] | None = None,
                  cpu: Spent | None = None, gpu: Spent | None = None
                  ) -> tuple[list[CallEffects | Malformed], dict[str, Any] | None]:
        """Run function calls in order: (each call's effects, checked, the first failure or None). A call
        whose effects are malformed ends the list as ``Malformed``. ``ask`` answers the worker's questions
        (``state``, ``model``) with a value the engine pickles. ``state``: the twin's state, sent with the calls
        (for a function known to read it: a question it will not need to ask). ``cpu`` is told the CPU seconds
        the calls used in the worker, ``gpu`` their GPU-seconds, whether they worked or not (not when the
        worker died: its figures went with it)."""

        def answer(question: dict[str, Any], _blobs: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
            return {"answer": question.get("ask")}, [pickled(ask(question))]

        results: list[CallEffects | Malformed] = []
        received = [0]  # calls answered so far

        def part(reply: dict[str, Any], blobs: list[bytes]) -> None:
            """A part of the answer, read and checked while the worker runs the next calls (after a malformed
            call, later parts are counted, not read)."""
            count = reply.get("calls")
            if reply.get("note") != "effects" or not isinstance(count, int) or isinstance(count, bool) \
                    or not 0 <= count <= len(calls) - received[0] or len(blobs) != 1:
                raise ProtocolError("the worker's answer to function calls is malformed")
            received[0] += count
            if not results or isinstance(results[-1], CallEffects):
                results.extend(read_effects(blobs[0], count, tagged=reply.get("tagged") is True,
                                            max_bytes=self.workers.effect_max_bytes))

        parts = [calls[i: i + PART_CALLS] for i in range(0, len(calls), PART_CALLS)] or [[]]
        sent = [pickled(parts[0])] if state is None else [pickled(parts[0]), pickled(state())]
        later = (({"op": "calls"}, [pickled(each)]) for each in parts[1:])  # packed as the worker runs
        with self.lease(prefer) as worker:
            before = worker.cpu_seconds(kept=True) if cpu is not None else 0.0
            held = GpuCall(worker) if gpu is not None else None
            try:
                reply, blobs = worker.request({"op": "functions", "parts": len(parts), **header}, sent,
                                              timeout=self.workers.timeout, ask=answer, note=part, later=later)
            except WorkerCrashed as exc:
                exc.completed = _progress(worker.layout.scratch)  # calls that returned before it died
                raise
            finally:
                if cpu is not None and worker.alive:
                    cpu(max(0.0, worker.cpu_seconds(kept=True) - before))
                if gpu is not None and held is not None and worker.alive:
                    gpu(held.seconds())
        part({**reply, "note": "effects"}, blobs)  # the last part
        failed = reply.get("failed")
        return results, (failed if isinstance(failed, dict) else None)


class GpuCall:
    """The GPU-seconds of one call in ``worker``: its wall seconds times the GPUs the worker held a context
    on at its start or at its end, whichever is more (a model put on a GPU during the call counts from the
    call's start). The allocation, as Slurm's ``gres/gpu`` counts it: a warm worker that keeps a model on a
    GPU holds that GPU in each of its calls, busy or not; between calls it is charged to nobody."""

    def __init__(self, worker: Worker) -> None:
        self.worker, self.began, self.held = worker, time.monotonic(), worker.gpus_held()

    def seconds(self) -> float:
        return (time.monotonic() - self.began) * max(self.held, self.worker.gpus_held())


def _progress(scratch: Path) -> int:
    """How many function calls a dead worker finished (it wrote the index of the one it began; the file is
    the worker's, so it is opened without following links and read as a number, nothing more)."""
    try:
        fd = os.open(scratch / ".progress", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return 0
    try:
        return int.from_bytes(os.read(fd, 4).ljust(4, b"\0"), "little")
    finally:
        os.close(fd)


def default_workers() -> Workers:
    """Workers from the environment's settings, for code paths that run outside a runtime (a bare run)."""
    from twinengine.config import Settings

    return Workers.from_settings(Settings())


