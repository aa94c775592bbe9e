"""A warm image (fork server) of an app version or of UDFs, inside its bubblewrap sandbox: it imports the
engine's own modules and packages a worker of its kind needs (numpy, xarray, PyTorch...) once, then forks each
worker from itself on the engine's request.

It never runs code the engine did not write: not the app's package nor its environment (they are imported by
each worker after it forked, once it is a sandbox of its own), nor a module either of them provides (a module
of that name is not preloaded, so the worker imports the app's). So the capability it holds to make each
worker's namespaces (``CAP_SYS_ADMIN`` in its user namespace) is never within reach of such code, and a worker
starts from the image's memory alone, never from another worker's.

Run as ``python -I -B -m twinengine.workers._zygote [--path=P ...]`` with a ``SOCK_SEQPACKET`` socket to the
engine as its stdin. One JSON message each way per datagram:

- engine: ``{"preload": [modules]}`` once; then ``{"op": "fork", "id": n, "scratch": name, "memory": bytes,
  "processes": n, "file_bytes": n, "shm_bytes": n}`` with the worker's stdin, stdout and log descriptors;
- image: ``{"ready": pid, "preloaded": [...], "skipped": {module: why}}`` once; ``{"id": n, "pid": p}`` (or
  ``"error"``) per fork; ``{"ended": n, "code": c}`` when the worker of request n ended (its exit status, or
  -signal).

A forked worker is made ahead of its request: it waits for a byte on its stdin (sent once it is in its
cgroups) before it forks the process that serves, and that one for a second word (its request came, with the
bound of its address space) before it serves. The engine closing the socket retires the image: it forks no
more, and ends with the last of its workers.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.abc
import json
import os
import select
import signal
import socket
import struct
import sys
import traceback
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from twinengine.workers import _isolate

_MESSAGE = 1 << 16
_ENTERED, _GO = b"\x02", b"\x01"  # the engine's words: it is in its cgroups; its request came
_MEMORY = struct.Struct("<Q")  # after the engine's go: the address-space bound of each process (0: none)
_FAILED = 71  # a worker that could not be made a sandbox of its own exits with this status
_CACHE = "/twin/cache"


class _NotTheApps(importlib.abc.MetaPathFinder):
    """Refuses to import, while the image preloads, any module the app or its environment provides: the
    worker must import the app's, and the image must never run it."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name.partition(".")[0] in self.names:
            raise ImportError(f"{name} is provided by the app or its environment")
        return None


def _provided(paths: list[str]) -> set[str]:
    """The top-level module names the app's folders provide (read from their listings; nothing imported)."""
    names: set[str] = set()
    for path in paths:
        try:
            entries = os.listdir(path)
        except OSError:
            continue
        for entry in entries:
            if entry.endswith((".dist-info", ".egg-info", ".pth", ".data")) or entry.startswith("."):
                continue
            names.add(entry.partition(".")[0])
    return names


def _preload(modules: list[str], guard: _NotTheApps) -> tuple[list[str], dict[str, str]]:
    done, skipped = [], {}
    sys.meta_path.insert(0, guard)
    try:
        for name in modules:
            try:
                importlib.import_module(name)
                done.append(name)
            except BaseException as exc:  # a package missing here, or one the app provides
                skipped[name] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        sys.meta_path.remove(guard)
    return done, skipped


class Image:
    def __init__(self, control: socket.socket, paths: list[str]) -> None:
        self.control, self.paths = control, paths
        self.requests: dict[int, int] = {}  # pid of a forked worker -> the engine's request id
        self.pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.wake, waker = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(waker)
        signal.signal(signal.SIGCHLD, lambda _signal, _frame: None)

    def send(self, message: dict[str, object]) -> None:
        with contextlib.suppress(OSError):  # the engine let go of the image: nothing more to tell
            self.control.send(json.dumps(message).encode())

    def serve(self) -> int:
        while True:
            readable, _, _ = select.select([self.control.fileno(), self.wake], [], [])
            if self.wake in readable:
                while True:
                    try:
                        os.read(self.wake, 512)
                    except BlockingIOError:
                        break
                self.reap()
            if self.control.fileno() in readable:
                message, fds, _flags, _address = socket.recv_fds(self.control, _MESSAGE, 3)
                if not message:  # retired: the workers forked already go on, the image ends with the last
                    return self.retire()
                self.fork(json.loads(message), fds)

    def fork(self, request: dict[str, object], fds: list[int]) -> None:
        ident = int(request["id"])  # type: ignore[call-overload]
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            self.send({"id": ident, "error": "a fork request carries the worker's three descriptors"})
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            _isolate.new_pid_namespace()
            try:
                pid = os.fork()
            except OSError:
                _isolate.back_to(self.pid_namespace)
                raise
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.send({"id": ident, "error": f"the image could not fork a worker: {exc}"})
            return
        if pid == 0:
            _worker(self, request, fds)  # never returns
        _isolate.back_to(self.pid_namespace)  # the image's own pid namespace for its next fork
        for fd in fds:
            os.close(fd)
        self.requests[pid] = ident
        self.send({"id": ident, "pid": pid})

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            ident = self.requests.pop(pid, None)
            if ident is not None:
                self.send({"ended": ident, "code": os.waitstatus_to_exitcode(status)})

    def retire(self) -> int:
        while True:
            try:
                pid, _status = os.wait()
            except ChildProcessError:
                return 0
            self.requests.pop(pid, None)


def _worker(image: Image, request: dict[str, object], fds: list[int]) -> None:
    """In the forked process (pid 1 of its own pid namespace): make the sandbox, wait for the engine to have
    put it into its cgroups, fork the worker (which waits for its word to serve), and wait for it as the
    sandbox's init, reaping what the code leaves behind."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        image.control.detach()  # its descriptor is the worker's stdin from now on, not a socket to close
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # nothing of the image's: only the worker's own three
        processes = int(request.get("processes", 0))  # type: ignore[call-overload]
        _isolate.isolate(str(request["scratch"]), int(request.get("shm_bytes", 0)))  # type: ignore[call-overload]
        _isolate.drop_privileges()
        from twinengine.workers._child import _limit

        _limit(0, processes, int(request.get("file_bytes", 0)))  # type: ignore[call-overload]
        if _read(0, 1) != _ENTERED:  # let go of before it was in its cgroups: nothing runs
            os._exit(0)
        child = os.fork()
        if child == 0:
            _serve(image.paths, processes)
        # it keeps the worker's stdout open: the engine reads the end of it only once this process has ended
        # and its status (the worker's) is known, never while a kill could still take that status's place
        null = os.open("/dev/null", os.O_RDWR)
        for target in (0, 2):
            os.dup2(null, target)
        os.close(null)
        while True:
            pid, status = os.wait()
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
                os._exit(128 - code if code < 0 else code)  # killed by signal n: 128 + n, as bubblewrap says it
    except BaseException:
        try:
            os.write(2, f"the worker's sandbox could not be made: {traceback.format_exc(limit=-3)}".encode())
        finally:
            os._exit(_FAILED)


def _read(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _mapped() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _serve(paths: list[str], processes: int) -> None:
    """The worker: wait for the engine's word (its request came), bound its address space, serve."""
    code = 1
    try:
        word = _read(0, 1 + _MEMORY.size)
        if len(word) != 1 + _MEMORY.size or word[:1] != _GO:  # let go of before its request: nothing runs
            os._exit(0)
        memory = _MEMORY.unpack(word[1:])[0]
        if memory > 0:  # each process's address space beyond what the image maps (what a fresh worker would
            import resource  # map for the same imports): what the sandbox holds is bound by its cgroup or watch

            limit = memory + _mapped()
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.chdir("/twin/scratch")
        if os.path.isdir(_CACHE):  # its app version's cache folder: kept between workers, never read by the image
            os.environ.update({"XDG_CACHE_HOME": _CACHE, "NUMBA_CACHE_DIR": f"{_CACHE}/numba"})
        numpy = sys.modules.get("numpy.random")
        if numpy is not None:  # its global generator was seeded once in the image: each worker its own
            numpy.seed()
        from twinengine.workers import _child

        code = _child.run(paths, processes)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def main(argv: list[str]) -> int:
    paths = [a.split("=", 1)[1] for a in argv if a.startswith("--path=")]
    control = socket.socket(fileno=0)
    first = json.loads(control.recv(_MESSAGE) or b"{}")
    guard = _NotTheApps(_provided(paths))
    preloaded, skipped = _preload([str(m) for m in first.get("preload", [])], guard)
    gc.collect()
    gc.freeze()  # what the image holds is never collected in a worker: its pages stay shared
    image = Image(control, paths)
    image.send({"ready": os.getpid(), "preloaded": preloaded, "skipped": skipped})
    return image.serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
