"""The sandbox a worker process runs in: Debian's bubblewrap (``bwrap``), or nothing where told so.

Inside bwrap a worker has its own user (uid 65534, no capabilities, even when the engine runs as root),
pid, network (loopback only, nothing listening), IPC and UTS namespaces, and may not make a user namespace
of its own (where it would hold every capability; bubblewrap 0.8 and newer). It sees the system's ``/usr``, the
Python and engine package folders read-only, the app's code at ``/twin/app`` and its environment at
``/twin/env`` read-only, its scratch folder at ``/twin/scratch`` (also its ``/tmp``) and the app version's
cache folder at ``/twin/cache`` (shared by that version's workers only): the only places it can write.
Nothing of the data dir is there; should a mounted folder contain it, it is covered by an empty tmpfs. The
environment holds no ``TWIN_*`` variable and no credential.

An app that names a container image runs in that image instead, where an admin chose a container runtime
(``workers/containers.py``): the same folders at the same places, the same variables, no network.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from twinengine.errors import SandboxUnavailable
from twinengine.workers import cgroups, memory_watch
from twinengine.workers.containers import ContainerRuntime, container_argv, find_runtime

if TYPE_CHECKING:
    from twinengine.config import Settings

__all__ = ["APP_DIR", "CACHE_DIR", "ENV_DIR", "SCRATCH_DIR", "Layout", "Limits", "Sandbox", "SandboxMode",
           "SandboxUnavailable", "bwrap_works", "cache_env", "gpu_devices", "said_by_engine"]

log = logging.getLogger("twinengine.workers")

SandboxMode = Literal["auto", "bwrap", "none"]
APP_DIR, ENV_DIR, SCRATCH_DIR, CACHE_DIR = "/twin/app", "/twin/env", "/twin/scratch", "/twin/cache"
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "host.conf")
_WARNED: set[str] = set()
_TO_STDERR = [True]  # False in a process the engine started for itself (``said_by_engine``)
_SAYING = threading.Lock()  # two threads that check at once say it once
_CHILD = "twinengine.workers._child"
SCRATCHES = "/twin/.scratch"  # where a warm image sees the scratch folders of the workers it forks
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


@dataclass(frozen=True)
class Layout:
    """What one worker sees besides the system: its scratch folder, the app's code and environment."""

    scratch: Path
    code: Path | None = None
    env: Path | None = None
    cache: Path | None = None  # the app version's own cache folder (compiled kernels), kept between workers
    image: str | None = None  # the app's OCI image, run with the container runtime where one is configured


@dataclass(frozen=True)
class Limits:
    """What one bubblewrap sandbox may hold as a whole, besides its memory (``Worker``'s ``tree_bytes``): its
    processes and threads (``RLIMIT_NPROC``, counted in the worker's own user namespace, and ``pids.max``),
    the largest file it writes (``RLIMIT_FSIZE``: scratch and cache are on disk) and its ``/dev/shm``
    (memory, charged to its memory cgroup too). 0: no limit."""

    processes: int = 128
    file_bytes: int = 4 << 30
    shm_bytes: int = 64 << 20


@functools.cache
def bwrap_works(binary: str = "bwrap") -> str | None:
    """None when ``bwrap`` can start a sandbox here, else why not (missing, or user namespaces refused)."""
    path = shutil.which(binary)
    if path is None:
        return "bwrap is not installed (Debian: apt-get install bubblewrap)"
    probe = subprocess.run([path, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
                            "--cap-drop", "ALL", "--ro-bind", "/", "/", "--proc", "/proc", "true"],
                           capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        return f"bwrap cannot start a sandbox here: {probe.stderr.strip()[-300:] or probe.returncode}"
    return None


@functools.cache
def _disables_userns(binary: str) -> bool:
    """Whether this bubblewrap can stop the sandbox making user namespaces of its own (``--disable-userns``,
    bubblewrap 0.8 and newer; an older one runs the worker without it, as before)."""
    try:
        shown = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return "--disable-userns" in shown.stdout + shown.stderr


@functools.cache
def _fresh_python(executable: str) -> tuple[list[str], str]:
    """What a fresh ``python -I`` of the engine's environment sees: its prefixes and import path, and where
    it would import ``twinengine`` from (empty when nowhere)."""
    out = subprocess.run([executable, "-I", "-c", "import importlib.util, json, sys; spec = importlib.util.find_spec("
                          "'twinengine'); print(json.dumps([[sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path], "
                          "spec.origin if spec and spec.origin else '']))"],
                         capture_output=True, text=True, check=True, timeout=60)
    paths, origin = json.loads(out.stdout)
    return [str(p) for p in paths], str(origin)


def _engine_root() -> str:
    """The folder the running engine imported ``twinengine`` from."""
    import twinengine

    return os.path.dirname(os.path.dirname(os.path.realpath(twinengine.__file__)))


def _other_engine(executable: str) -> str | None:
    """The running engine's package folder when a fresh ``python -I`` would import another ``twinengine``
    (a development checkout run beside an editable install of another one), else None: a worker must run
    the protocol of the engine that talks to it."""
    origin = _fresh_python(executable)[1]
    ours = _engine_root()
    return None if origin and os.path.dirname(os.path.dirname(os.path.realpath(origin))) == ours else ours


# Starts ``module`` as __main__ with a given folder first on the import path (for ``_other_engine``).
_BOOT = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
         "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")


@functools.cache
def _python_folders(executable: str) -> tuple[str, ...]:
    """The folders a fresh ``python -I`` of the engine's environment imports from (stdlib, site-packages,
    editable installs), outermost only."""
    found = {os.path.realpath(p) for p in _fresh_python(executable)[0] if p and os.path.isdir(p)}
    found |= {os.path.dirname(os.path.realpath(executable)), os.path.dirname(os.path.abspath(executable))}
    found.add(_engine_root())
    found.add(str(Path(os.path.abspath(executable)).parent.parent))  # a venv's root (pyvenv.cfg)
    ordered = sorted(found, key=len)
    return tuple(p for i, p in enumerate(ordered) if not any(_under(p, q) for q in ordered[:i]))


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


_PROBED: dict[tuple[object, ...], str | None] = {}
# One probe at a time: ``twin serve`` checks on a thread while it starts, and the runtime's own check at start
# waits for that answer rather than starting a second worker.
_PROBING = threading.Lock()


def _probe(sandbox: Sandbox, *key: object) -> str | None:
    """``Sandbox.problem``, remembered per ``key`` (bubblewrap's command, the interpreter, the limits): a
    worker's own module started in bubblewrap with nothing to read, which must exit cleanly."""
    with _PROBING:
        return _probe_now(sandbox, *key)


def _probe_now(sandbox: Sandbox, *key: object) -> str | None:
    problem = bwrap_works(sandbox.binary)  # remembered on its own
    if problem is not None or key in _PROBED:
        return problem or _PROBED[key]
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="twin-probe-"))
    try:
        (scratch / "tmp").mkdir()
        layout = Layout(scratch=scratch)
        argv = [*sandbox._bwrap(layout), "--", *sandbox._python(_CHILD, [], layout, bounded=True)]
        ran = subprocess.run(argv, env=_worker_env({"scratch": SCRATCH_DIR}, cached=False), cwd=scratch,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
        if ran.returncode != 0:
            problem = f"a sandboxed worker cannot start here ({ran.stderr.strip()[-300:] or ran.returncode})"
    except (OSError, subprocess.SubprocessError) as exc:
        problem = f"a sandboxed worker cannot start here ({exc})"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _PROBED[key] = problem
    return problem


class Sandbox:
    """Builds the command line of a worker process for one ``Layout``.

    ``mode`` is the setting (``auto``, ``bwrap``, ``none``). ``auto`` uses bwrap when it works; where it does
    not, an embedded engine (demo, tests) runs the code unsandboxed with a loud warning, while ``twin serve``
    turns ``auto`` into ``bwrap`` and so refuses it. ``hidden`` are the engine's folders never seen inside.
    """

    def __init__(self, mode: SandboxMode, *, hidden: list[Path], python: str = sys.executable,
                 devices: list[str] | None = None, containers: ContainerRuntime = "none",
                 limits: Limits = Limits(), binary: str = "bwrap") -> None:
        # the interpreter's path without '..' (a script run as ../.venv/bin/python): inside bubblewrap only
        # the Python folders are mounted, so a path through another folder would not resolve there
        self.mode, self.hidden, self.python = mode, [Path(p) for p in hidden], os.path.normpath(os.path.abspath(python))
        self.devices = list(devices or [])  # device nodes an app's workers get (GPUs), never a UDF's
        self.containers = containers  # the runtime of apps that name an image (none: they run as others do)
        self.limits, self.binary = limits, binary  # binary: bubblewrap's command (a name on the PATH or a path)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sandbox:
        """The sandbox the settings choose, hiding the engine's folders and bounded by its limits."""
        hidden = [settings.data_dir, settings.streams_dir, settings.collections_dir, settings.envs_root]
        if settings.is_sqlite:
            hidden.append(Path(settings.db_url.removeprefix("sqlite:///")).parent)
        devices = gpu_devices() if settings.sandbox_gpus == "auto" else []
        limits = Limits(processes=settings.worker_processes, file_bytes=settings.worker_file_bytes,
                        shm_bytes=settings.worker_shm_bytes)
        return cls(settings.sandbox, hidden=[p for p in hidden if p is not None], devices=devices,
                   containers=settings.container_runtime, limits=limits)

    def problem(self) -> str | None:
        """Why bubblewrap cannot run a worker here (None: it can). Found once per interpreter and limits by
        starting one tiny worker with the real layout (the Python folders mounted, a scratch folder, the
        limits), so a host that cannot run one is told at start-up, not by every worker later."""
        return _probe(self, self.binary, self.python, self.limits)

    def effective(self) -> Literal["bwrap", "none"]:
        """The sandbox used now; raises ``SandboxUnavailable`` where untrusted code may not run."""
        if self.mode == "none":
            _warn_once("none", "TWIN_SANDBOX=none: app and user code run WITHOUT a sandbox and can read this "
                               "engine's secrets (data dir, keys, tokens). Use it only on a machine you alone use.")
            return "none"
        problem = self.problem()
        if problem is None:
            return "bwrap"
        if self.mode == "bwrap":  # said to callers: the cause names no engine path (start-up says it whole)
            raise SandboxUnavailable(_unavailable(self.scrubber(None)(problem)))
        _warn_once("auto", f"{problem}: app and user code run WITHOUT a sandbox in this embedded engine and can "
                           "read its secrets. Fix that (TWIN_SANDBOX=auto uses bubblewrap when it works; "
                           "TWIN_SANDBOX=none says to run it unsandboxed).")
        return "none"

    def announce(self) -> str | None:
        """Check the sandbox at start-up and say once (log and stderr) when app and user code cannot run in
        it, naming the cause and the setting that chooses another; returns that cause, or None."""
        try:
            mode = self.effective()
        except SandboxUnavailable:
            said = _unavailable(self.problem() or "")
            _warn_once("unavailable", f"{said}. Until then this engine refuses UDFs, app functions and app "
                                      "processes.")
            return said
        if mode == "bwrap" and os.geteuid() == 0 and self.limits.processes > 0 and cgroups.available() is None:
            _warn_once("nproc", "this engine runs as root and the host lets it make no pids cgroup: the kernel "
                                "applies no cap on a sandbox's processes (worker_processes) to root; run the "
                                "engine as an ordinary user, or give it a cgroup (v1 pids, or v2 with pids "
                                "delegated)")
        if cgroups.available("memory") is None:
            log.info("the host lets this engine make no memory cgroup: a sandbox's processes together are held "
                     "under its memory limit by the engine's watch of their tree (a look every %g s), not by the "
                     "kernel; give it a cgroup (v1 memory, or v2 with memory delegated) for a kernel bound",
                     memory_watch.INTERVAL)
        return None

    def command(self, module: str, args: list[str], layout: Layout) -> tuple[list[str], dict[str, str], str]:
        """(argv, environment, working folder) of ``python -I -B -m module`` in the sandbox. Under bwrap the
        argv names ``--args 3``: the mounts go to bwrap through fd 3 (``Worker`` writes them there), so no
        path of the engine's shows in the sandbox's ``/proc/1/cmdline``. An app's worker whose layout names
        an image runs in it with the configured container runtime, when there is one."""
        runtime = find_runtime(self.containers) if layout.image and layout.code is not None else None
        if runtime is not None:
            return self._container(runtime, module, args, layout)
        if layout.image:
            _warn_once(f"image:{layout.image}", f"an app names the image {layout.image}, and no container runtime is "
                                                "configured (TWIN_CONTAINER_RUNTIME): its workers run in bubblewrap "
                                                "with the app's requires environment")
        mode = self.effective()
        inside = {"scratch": SCRATCH_DIR, "code": APP_DIR, "env": ENV_DIR, "cache": CACHE_DIR} if mode == "bwrap" \
            else {"scratch": str(layout.scratch), "code": str(layout.code), "env": str(layout.env),
                  "cache": str(layout.cache)}
        (layout.scratch / "tmp").mkdir(parents=True, exist_ok=True)
        env = _worker_env(inside, cached=layout.cache is not None)
        if mode == "none":  # the process cap counts per host user there: it would count the user's other work
            return self._python(module, args, layout, bounded=False), env, str(layout.scratch)
        return [*self._bwrap(layout), "--", *self._python(module, args, layout, bounded=True)], env, \
            str(layout.scratch)

    def _python(self, module: str, args: list[str], layout: Layout, *, bounded: bool) -> list[str]:
        """``python -I -B -m module args`` with the app's folders on its path (as the worker sees them) and,
        in bubblewrap, the sandbox's limits."""
        inside = {"code": APP_DIR, "env": ENV_DIR} if bounded else {"code": str(layout.code), "env": str(layout.env)}
        paths = [inside[k] for k, v in (("code", layout.code), ("env", layout.env)) if v is not None]
        other = _other_engine(self.python)
        start = ["-m", module] if other is None else ["-c", _BOOT, other, module]
        bounds = [f"--processes={self.limits.processes}", f"--file-bytes={self.limits.file_bytes}"] if bounded else []
        return [self.python, "-I", "-B", *start, *args, *[f"--path={p}" for p in paths], *bounds]

    def scrubber(self, layout: Layout | None) -> Callable[[str], str]:
        """What turns a worker's error, traceback or log tail into text that names no engine path: its own
        folders by their inside names (``/twin/scratch``, ``/twin/app``...), the engine's package folder as
        ``<engine>``, its other Python folders as ``<python>`` and a hidden folder as ``<hidden>``."""
        names: dict[str, str] = {}
        mounts = [] if layout is None else [(layout.scratch, SCRATCH_DIR), (layout.code, APP_DIR),
                                            (layout.env, ENV_DIR), (layout.cache, CACHE_DIR)]
        for path, inside in mounts:
            if path is not None:
                names |= {os.path.abspath(path): inside, os.path.realpath(path): inside}
        try:
            folders = [p for p in _python_folders(self.python) if not _under(p, "/usr")]
        except (OSError, subprocess.SubprocessError, ValueError):
            folders = []
        names |= {p: "<python>" for p in folders} | {_engine_root(): "<engine>"}
        names |= {os.path.realpath(p): "<hidden>" for p in self.hidden} | {str(p): "<hidden>" for p in self.hidden}
        names = {k: v for k, v in names.items() if k not in ("/", "")}
        if not names:
            return lambda text: text
        pattern = re.compile("|".join(re.escape(k) for k in sorted(names, key=len, reverse=True)) + r"(?![\w.\-])")
        return lambda text: pattern.sub(lambda m: names[m.group(0)], text) if text else text

    def _container(self, runtime: str, module: str, args: list[str],
                   layout: Layout) -> tuple[list[str], dict[str, str], str]:
        """The worker in the app's image: the runtime's own variables for the runtime, the worker's inside."""
        assert layout.image is not None and layout.code is not None
        inside = {"scratch": SCRATCH_DIR, "code": APP_DIR, "cache": CACHE_DIR}
        (layout.scratch / "tmp").mkdir(parents=True, exist_ok=True)
        argv = container_argv(runtime, layout.image, python=["python", "-I", "-B", "-m", module, *args,
                                                             f"--path={APP_DIR}"],
                              env=_worker_env(inside, cached=layout.cache is not None), scratch=layout.scratch,
                              code=layout.code, cache=layout.cache, devices=self.devices, mounts=inside)
        host = {k: v for k, v in os.environ.items() if k in _RUNTIME_ENV}
        return argv, host, str(layout.scratch)

    def image_command(self, module: str, layout: Layout, scratches: Path) -> tuple[list[str], dict[str, str], str]:
        """(argv, environment, working folder) of a warm image (``workers/_zygote.py``) for ``layout`` (its own
        scratch folder, the app's folders) in bubblewrap, seeing ``scratches`` (its workers' scratch folders)
        at ``/twin/.scratch``. Unlike a worker's, its sandbox keeps ``CAP_SYS_ADMIN`` (each forked worker makes
        its namespaces with it, then drops it: ``workers/_isolate.py``), is not kept from making user namespaces
        (each worker makes one and is kept from making more there) and has a ``/dev`` of plain device nodes
        (bubblewrap's own ``--dev`` would put the image in a nested user namespace that owns none of its
        mounts)."""
        (layout.scratch / "tmp").mkdir(parents=True, exist_ok=True)
        # without the cache's variables: the image never reads what its workers write there (each worker
        # that has one is given them once forked: cache_env)
        env = _worker_env({"scratch": SCRATCH_DIR, "code": APP_DIR, "env": ENV_DIR, "cache": CACHE_DIR}, cached=False)
        return [*self._bwrap(layout, scratches), "--", *self._python(module, [], layout, bounded=True)], env, \
            str(layout.scratch)

    def _bwrap(self, layout: Layout, scratches: Path | None = None) -> list[str]:
        """bwrap's options for ``layout`` (a warm image's with ``scratches``, see ``image_command``). A later
        mount lands on top of an earlier one, so the worker's own ``/tmp`` comes first: a Python, engine or app
        folder that lives under the host's /tmp is mounted over it afterwards and can never be hidden by it. The
        root is made read-only last."""
        binary = shutil.which(self.binary) or self.binary
        argv = [binary, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL"]
        if scratches is not None:
            argv += ["--cap-add", "CAP_SYS_ADMIN"]
        argv += ["--die-with-parent", "--new-session", "--hostname", "twin-worker"]
        if scratches is None and _disables_userns(binary):  # no user namespace of its own: no capabilities there
            argv.append("--disable-userns")
        argv += ["--bind", str(layout.scratch / "tmp"), "/tmp"]
        for top in ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"):
            path = Path("/") / top
            if path.is_symlink():
                argv += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                argv += ["--ro-bind", str(path), str(path)]
        for name in _ETC:
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        # /proc/sys read-only: bubblewrap leaves it writable, and a worker of an engine run as root is the host's
        # root to the kernel's sysctl checks (kernel.core_pattern would run a program of its choosing as root)
        argv += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu",
                 "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"]
        if scratches is None:
            argv += ["--dev", "/dev"]
        else:
            argv += ["--tmpfs", "/dev"]
            for node in _DEVICES:
                argv += ["--dev-bind-try", f"/dev/{node}", f"/dev/{node}"]
            for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                                 ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
                argv += ["--symlink", target, f"/dev/{name}"]
        if self.limits.shm_bytes > 0:
            argv += ["--size", str(self.limits.shm_bytes)]
        argv += ["--tmpfs", "/dev/shm"]
        mounted = [p for p in _python_folders(self.python) if not _under(p, "/usr")]
        for folder in mounted:
            argv += ["--ro-bind", folder, folder]
        # a mounted folder holding the data dir (or the other workers' scratch folders) shows an empty one there,
        # by whichever path it is mounted (a symlinked home: its own path and the real one)
        for secret in [*self.hidden, layout.scratch.parent]:
            real = os.path.realpath(secret)
            if not os.path.isdir(real):
                continue
            for folder in mounted:
                inside = os.path.realpath(folder)
                if _under(real, inside):
                    place = folder + real[len(inside):] if real != inside else folder
                    argv += ["--tmpfs", place, "--remount-ro", place]
        if layout.code is not None:
            argv += ["--ro-bind", str(layout.code), APP_DIR]
        if layout.env is not None:
            argv += ["--ro-bind", str(layout.env), ENV_DIR]
        if layout.cache is not None:
            argv += ["--bind", str(layout.cache), CACHE_DIR]
        if layout.code is not None:  # an app's worker (training, serving): the GPUs it may use
            for device in self.devices:
                argv += ["--dev-bind-try", device, device]
        if scratches is not None:
            argv += ["--bind", str(scratches), SCRATCHES]
        argv += ["--bind", str(layout.scratch), SCRATCH_DIR, "--remount-ro", "/", "--chdir", SCRATCH_DIR]
        return argv


def _unavailable(problem: str) -> str:
    return (f"app and user code run only in a sandbox, and {problem}; fix that or set TWIN_SANDBOX=none to run "
            "it unsandboxed on a single-user machine")


# What podman or apptainer themselves need from the engine's environment (never a TWIN_* variable)
_RUNTIME_ENV = ("PATH", "HOME", "USER", "LOGNAME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "REGISTRY_AUTH_FILE", "APPTAINER_CACHEDIR",
                "APPTAINER_TMPDIR")


def cache_env(cache: str = CACHE_DIR) -> dict[str, str]:
    """The variables that keep compiled kernels (numba's, and what keeps to the XDG cache) in a worker's cache
    folder, between its version's workers."""
    return {"XDG_CACHE_HOME": cache, "NUMBA_CACHE_DIR": f"{cache}/numba"}


def _worker_env(inside: dict[str, str], *, cached: bool) -> dict[str, str]:
    """A worker's only variables, with its folders as it sees them."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": inside["scratch"], "TMPDIR": f"{inside['scratch']}/tmp", "USER": "nobody",
           "LOGNAME": "nobody", "MPLCONFIGDIR": f"{inside['scratch']}/tmp", "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE",  # threads a training asks for sleep while they wait, not spin
           "MLFLOW_DISABLE_TELEMETRY": "true"}  # as the engine's own processes (twinengine/__init__.py)
    if cached:
        env |= cache_env(inside["cache"])
    return env


def gpu_devices(root: str = "/dev") -> list[str]:
    """The NVIDIA device nodes of this machine (``nvidiactl``, ``nvidia-uvm``, ``nvidia0``...), sorted."""
    import glob

    return sorted(glob.glob(os.path.join(root, "nvidia*")))


def said_by_engine() -> None:
    """In a process an engine starts for its own work (a sync process, with the engine's settings): what this
    module says once goes to the log only. The engine that started it has said it on stderr already, and the
    person at the terminal reads it once."""
    _TO_STDERR[0] = False


def _warn_once(key: str, message: str) -> None:
    """Say ``message`` once per process: to the log where one is configured, and to stderr unless the log
    already writes there (with no handler at all, logging's last resort would print it a second time) or the
    engine that started this process said it (``said_by_engine``)."""
    with _SAYING:
        if key in _WARNED:
            return
        _WARNED.add(key)
    handlers = _log_handlers(log)
    if handlers:
        log.warning(message)
    to_stderr = any(isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.__stderr__) for h in handlers)
    if _TO_STDERR[0] and not to_stderr:
        print(f"\n!!! twinengine: {message}\n", file=sys.stderr, flush=True)


def _log_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record of ``logger`` reaches (``propagate`` followed up to the root)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        current = current.parent if current.propagate else None
    return found

