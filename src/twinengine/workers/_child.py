"""Inside a worker process (in its sandbox): read requests from stdin, run app or user code, answer on the
protocol's stdout. What the code prints goes to stderr (the engine keeps its tail for error messages).

Run as ``python -I -B -m twinengine.workers._child --memory=N [--processes=N] [--file-bytes=N] [--path=P ...]``;
the limits are set before any untrusted code runs and cannot be raised again from inside.
"""

from __future__ import annotations

import errno
import gc
import importlib
import importlib.util
import itertools
import mmap
import os
import pkgutil
import struct
import sys
import time
import traceback
import types
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, Any

from twinengine.workers.protocol import PART_CALLS, ProtocolError, encode, read_message, unpickled, write_message

Reply = tuple[dict[str, Any], list[bytes]]
PROGRESS = ".progress"  # in the scratch folder (the working folder): the index of the function call running
_KEEP_MODELS = 8  # built models a worker keeps when the engine does not say (its ``ml_warm_models``)
_INDEX = struct.Struct("<I")
_CAP = [0]  # the sandbox's cap on processes and threads, named when starting one fails


def _limit(memory_bytes: int, processes: int = 0, file_bytes: int = 0) -> None:
    """Limits no code run later can raise: address space per process, and, in a sandbox of its own user
    namespace, the processes and threads of the whole sandbox and the size of any file it writes."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for which, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_NPROC, processes),
                         (resource.RLIMIT_FSIZE, file_bytes)):
        if value > 0:
            resource.setrlimit(which, (value, value))


class _Parts:
    """The calls of one batch, in order: the first part came with the request, ``parts - 1`` more follow it
    (the engine packs them while the worker runs the first)."""

    def __init__(self, inp: IO[bytes], first: bytes | None, parts: int) -> None:
        self.inp, self.left, self.read = inp, parts - 1, deque([] if first is None else [first])

    def _receive(self) -> None:
        header, data = read_message(self.inp)
        if header.get("op") != "calls" or len(data) != 1:
            raise ProtocolError("a part of a batch of calls was expected")
        self.read.append(data[0])
        self.left -= 1

    def drain(self) -> None:
        """Read the parts still in the pipe (they are run later)."""
        while self.left > 0:
            self._receive()

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        while self.read or self.left > 0:
            if not self.read:
                self._receive()
            yield from unpickled(self.read.popleft())


class Child:
    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self.inp, self.out = inp, out
        self.models: dict[str, tuple[str, Any]] = {}  # slot -> (version, model), least recently used first
        self.host: Any = None  # the AI lifecycle's task host (twinengine.ml.task_host), made on first use
        self.progress: mmap.mmap | None = None  # PROGRESS, mapped on the first batch of function calls
        self.frozen = False  # gc.freeze() once the first function's module is imported
        self.parts: _Parts | None = None  # the calls of the batch being run
        self.handlers: dict[str, Callable[[dict[str, Any], list[bytes]], Reply]] = {
            "hello": self.hello, "udf": self.udf, "index": self.index, "entrypoints": self.entrypoints,
            "process": self.process,
            "functions": self.functions, "predict": self.predict}
        for op in ("load", "fit", "evaluate", "features"):
            self.handlers[f"task.{op}"] = self._hosted(op)

    def ask(self, header: dict[str, Any], blobs: list[bytes] | None = None) -> tuple[dict[str, Any], list[bytes]]:
        """Ask the engine for something mid-call (the twin's state, a model; a training epoch's report) and
        wait for its answer."""
        self.write(header, blobs)
        return read_message(self.inp)

    def write(self, header: dict[str, Any], blobs: list[bytes] | None = None) -> None:
        """Write to the engine, having read all of the request first: the engine sends a request whole before
        it reads, so neither side can wait on the other with both pipes full."""
        self.drain()
        write_message(self.out, header, blobs)

    def drain(self) -> None:
        """Read what is left of the request: the later parts of a batch of calls."""
        if self.parts is not None:
            self.parts.drain()

    def serve(self) -> int:
        while True:
            try:
                header, blobs = read_message(self.inp)
            except EOFError:
                return 0
            handler = self.handlers.get(str(header.get("op")))
            try:
                if handler is None:
                    raise ValueError(f"unknown request {header.get('op')!r}")
                reply, data = handler(header, blobs)
            except BaseException as exc:  # the code's failure is an answer; the worker stays
                reply, data = _failure(exc), []
            try:
                self.write(reply, data)
            except (TypeError, ValueError) as exc:  # an answer JSON cannot carry (a spec's odd default)
                self.write(_failure(exc), [])
            self.parts = None

    def hello(self, _header: dict[str, Any], _blobs: list[bytes]) -> Reply:
        """Who the worker is: its pid, uid and effective capabilities (hex, from ``/proc/self/status``)."""
        with open("/proc/self/status") as fh:
            caps = next((line.split()[1] for line in fh if line.startswith("CapEff:")), "")
        return {"pid": os.getpid(), "uid": os.getuid(), "capabilities": caps}, []

    def udf(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        payload = unpickled(blobs[0])
        module = types.ModuleType("udf_code")
        module.__file__ = "udf_code.py"
        exec(compile(payload["code"], "udf_code.py", "exec"), module.__dict__)
        func = getattr(module, "apply_datacube", None) or getattr(module, "udf", None)
        if func is None:
            raise LookupError("the UDF defines neither apply_datacube(cube, context) nor udf(data, context)")
        return _value(func(payload["data"], payload["context"] or {}))

    def index(self, header: dict[str, Any], _blobs: list[bytes]) -> Reply:
        from twinengine.app._process import declared_processes

        package = str(header["package"])
        root = importlib.import_module(package)
        modules = {package: root}
        for info in pkgutil.walk_packages(getattr(root, "__path__", []), package + "."):
            modules[info.name] = importlib.import_module(info.name)
        found = declared_processes(modules)
        return {"processes": [{"id": pid, "function": fn, "spec": spec} for pid, (fn, spec) in found.items()]}, []

    def entrypoints(self, header: dict[str, Any], _blobs: list[bytes]) -> Reply:
        """Which of the manifest's entrypoints ([loc, kind, "module:attr"]) the engine could not call, and why."""
        from twinengine.app._entrypoints import entrypoint_problem

        found = [(str(loc), entrypoint_problem(str(kind), str(entrypoint)))
                 for loc, kind, entrypoint in header["entrypoints"]]
        return {"problems": [[loc, problem] for loc, problem in found if problem is not None]}, []

    def process(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        """``function(**arguments)``; with ``parts``, the function is also given ``part``, which sends a part
        of its answer at once (the engine reads it while the function goes on); with ``more`` (n, and an
        argument named by ``more_into``, a list), n more messages extend that argument, read as the function
        iterates over it (the engine makes them while the function starts on the first items)."""
        func = _resolve(str(header["function"]))
        arguments = unpickled(blobs[0])
        more = int(header.get("more", 0))
        if more > 0:
            name = str(header["more_into"])
            self.parts = _Parts(self.inp, None, more + 1)
            arguments[name] = itertools.chain(arguments[name], self.parts)
        if header.get("parts"):
            arguments["part"] = self.part
        return _value(func(**arguments))

    def part(self, value: Any) -> None:
        """Send a part of the answer as a note (arrays as npy blobs, as the answer's are)."""
        blobs: list[bytes] = []
        self.write({"note": "part", "value": encode(value, blobs)}, blobs)

    def functions(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        """Run up to ``max_calls`` calls for ``seconds``; send each call's effects (one row per call, packed as
        it returns: ``twinengine.workers.effects``) in parts of ``PART_CALLS`` calls as notes, and the last
        part with the answer, which says the first failure if any."""
        calls = self.parts = _Parts(self.inp, blobs[0], int(header.get("parts", 1)))  # before anything can fail
        from twinengine.app._context import FunctionContext
        from twinengine.workers.effects import EffectsWriter

        function = _resolve(str(header["entrypoint"]))
        if not self.frozen:  # the app's modules are imported: what exists now lives as long as the worker
            gc.collect()
            gc.freeze()  # so the collections a batch's objects set off no longer walk it
            self.frozen = True
        twin = header["twin"]
        held: list[Any] = [unpickled(blobs[1])] if len(blobs) > 1 else []  # the state, when sent ahead

        def read_state() -> Any:
            if not held:
                _reply, data = self.ask({"ask": "state"})
                held.append(unpickled(data[0]) if data else None)
            return held[0]

        ctx = FunctionContext(twin_id=twin["id"], twin_name=twin["name"], function=twin["function"],
                              parameters=dict(twin["parameters"]), model=self._model(header.get("model")),
                              read_state=read_state,
                              properties=frozenset(twin["properties"]) if "properties" in twin else None)
        writer = EffectsWriter()
        failed: dict[str, Any] | None = None
        started, seconds = time.monotonic(), float(header.get("seconds", 1e9))
        progress = self._progress()
        for index, records in enumerate(itertools.islice(calls, int(header.get("max_calls", 1 << 62)))):
            _INDEX.pack_into(progress, 0, index)
            events, requests, published = len(ctx.events), len(ctx.workflow_requests), len(ctx.published)
            try:
                function(ctx, records)
                writer.add(ctx, events, requests, published)
            except Exception as exc:
                failed = _failure(exc)
                break
            ctx.applied += ctx.updates
            ctx.updates = []
            if time.monotonic() - started > seconds:
                break
            if len(writer.rows) == PART_CALLS:  # the engine reads these while the next calls run
                document, count, tagged = writer.take()
                self.write({"note": "effects", "calls": count, "tagged": tagged}, [document])
        document, count, tagged = writer.take()
        return {"calls": count, "failed": failed, "tagged": tagged}, [document]

    def _progress(self) -> mmap.mmap:
        """The index of the function call running, in a file of the scratch folder the engine reads when the
        worker dies mid-batch; mapped once, so marking a call costs no system call."""
        if self.progress is None:
            fd = os.open(PROGRESS, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.ftruncate(fd, _INDEX.size)
                self.progress = mmap.mmap(fd, _INDEX.size)
            finally:
                os.close(fd)
        return self.progress

    def _hosted(self, op: str) -> Callable[[dict[str, Any], list[bytes]], Reply]:
        """A request of the AI lifecycle (``task.load``, ``task.fit`` ...), served by the task host."""

        def handle(header: dict[str, Any], blobs: list[bytes]) -> Reply:
            if self.host is None:
                from twinengine.ml.task_host import TaskHost

                self.host = TaskHost(lambda question, data: self.ask(question, data))
            reply: Reply = getattr(self.host, op)(header, blobs)
            return reply

        return handle

    def predict(self, header: dict[str, Any], blobs: list[bytes]) -> Reply:
        """The app's predict with a model version the engine names (built once per slot and version)."""
        from twinengine.ml.served import ServedModel
        from twinengine.ml.task_host import jsonable

        served = self._model(header.get("model"))
        if not isinstance(served, ServedModel):
            raise LookupError("this model has no trained version to predict with")
        return _value(jsonable(served.predict(unpickled(blobs[0]))))

    def _model(self, wanted: dict[str, Any] | None) -> Any:
        """The function's model for this batch, kept per slot and version; the engine says what to build.
        At most ``keep`` slots stay built (least recently used out first), so the worker's memory follows
        the models in use, not all it ever served."""
        if not wanted:
            return None
        slot, version = str(wanted["slot"]), str(wanted["version"])
        held = self.models.pop(slot, None)  # put back last (the most recently used); an old version goes
        if held is None or held[0] != version:
            keep = max(1, int(wanted.get("keep", _KEEP_MODELS)))
            while len(self.models) >= keep:
                del self.models[next(iter(self.models))]
            _reply, data = self.ask({"ask": "model", "slot": slot, "version": version})
            recipe = unpickled(data[0])
            built = _resolve(recipe["entrypoint"])()
            if recipe.get("folder") is not None:  # a version the engine's registry holds: its model folder
                from twinengine.ml.served import served_model

                built = served_model(built, recipe["version"], recipe["params"], recipe["folder"],
                                     recipe.get("interval"))
            held = (version, built)
        self.models[slot] = held
        return held[1]


def _resolve(entrypoint: str) -> Any:
    module_name, _, attr = entrypoint.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _value(result: Any) -> Reply:
    blobs: list[bytes] = []
    return {"value": encode(result, blobs)}, blobs


def _failure(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, MemoryError):
        line = "MemoryError: the code ran out of the memory its worker may use"
    else:
        line = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if _CAP[0] and _capped(exc):
            line += (f" (when starting a process or thread: this sandbox's processes and threads together are "
                     f"capped at {_CAP[0]}, worker_processes)")
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6))
    return {"error": line[:2000], "trace": trace[-4000:]}


def _capped(exc: BaseException) -> bool:
    """Whether ``exc`` is what starting a process or thread past the sandbox's cap raises."""
    return (isinstance(exc, OSError) and exc.errno == errno.EAGAIN) or (
        isinstance(exc, RuntimeError) and "can't start new thread" in str(exc))


def main(argv: list[str]) -> int:
    def number(name: str) -> int:
        return next((int(a.split("=", 1)[1]) for a in argv if a.startswith(f"--{name}=")), 0)

    paths = [a.split("=", 1)[1] for a in argv if a.startswith("--path=")]
    _limit(number("memory"), number("processes"), number("file-bytes"))
    return run(paths, number("processes"))


def run(paths: list[str], processes: int) -> int:
    """Serve the engine on stdin and stdout, the limits set: a fresh worker comes here from ``main``, one forked
    from a warm image (``workers/_zygote.py``) once its sandbox is made."""
    _CAP[0] = processes
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what the code prints goes to the log, never into the protocol
    sys.stdout = os.fdopen(1, "w", buffering=1)
    for path in reversed(paths):  # the app's code first, then its environment, then the engine's
        sys.path.insert(0, path)
    return Child(os.fdopen(0, "rb"), out).serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
