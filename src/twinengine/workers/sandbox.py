"""The sandbox a worker process runs in: Debian's bubblewrap (``bwrap``), or nothing where told so.

Inside bwrap a worker has its own user (uid 65534, no capabilities, even when the engine runs as root),
pid, network (loopback only, nothing listening), IPC and UTS namespaces. It sees the system's ``/usr``, the
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
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from twinengine.errors import SandboxUnavailable
from twinengine.workers.containers import ContainerRuntime, container_argv, find_runtime

__all__ = ["APP_DIR", "CACHE_DIR", "ENV_DIR", "SCRATCH_DIR", "Layout", "Sandbox", "SandboxMode", "SandboxUnavailable",
           "bwrap_works", "gpu_devices"]

log = logging.getLogger("twinengine.workers")

SandboxMode = Literal["auto", "bwrap", "none"]
APP_DIR, ENV_DIR, SCRATCH_DIR, CACHE_DIR = "/twin/app", "/twin/env", "/twin/scratch", "/twin/cache"
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "host.conf")
_WARNED: set[str] = set()


@dataclass(frozen=True)
class Layout:
    """What one worker sees besides the system: its scratch folder, the app's code and environment."""

    scratch: Path
    code: Path | None = None
    env: Path | None = None
    cache: Path | None = None  # the app version's own cache folder (compiled kernels), kept between workers
    image: str | None = None  # the app's OCI image, run with the container runtime where one is configured


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


class Sandbox:
    """Builds the command line of a worker process for one ``Layout``.

    ``mode`` is the setting (``auto``, ``bwrap``, ``none``). ``auto`` uses bwrap when it works; where it does
    not, an embedded engine (demo, tests) runs the code unsandboxed with a loud warning, while ``twin serve``
    turns ``auto`` into ``bwrap`` and so refuses it. ``hidden`` are the engine's folders never seen inside.
    """

    def __init__(self, mode: SandboxMode, *, hidden: list[Path], python: str = sys.executable,
                 devices: list[str] | None = None, containers: ContainerRuntime = "none") -> None:
        # the interpreter's path without '..' (a script run as ../.venv/bin/python): inside bubblewrap only
        # the Python folders are mounted, so a path through another folder would not resolve there
        self.mode, self.hidden, self.python = mode, [Path(p) for p in hidden], os.path.normpath(os.path.abspath(python))
        self.devices = list(devices or [])  # device nodes an app's workers get (GPUs), never a UDF's
        self.containers = containers  # the runtime of apps that name an image (none: they run as others do)

    def effective(self) -> Literal["bwrap", "none"]:
        """The sandbox used now; raises ``SandboxUnavailable`` where untrusted code may not run."""
        if self.mode == "none":
            _warn_once("none", "TWIN_SANDBOX=none: app and user code run WITHOUT a sandbox and can read this "
                               "engine's secrets (data dir, keys, tokens). Use it only on a machine you alone use.")
            return "none"
        problem = bwrap_works()
        if problem is None:
            return "bwrap"
        if self.mode == "bwrap":
            raise SandboxUnavailable(f"app and user code run only in a sandbox, and {problem}; install bubblewrap "
                                     "or set TWIN_SANDBOX=none to run it unsandboxed on a single-user machine")
        _warn_once("auto", f"{problem}: app and user code run WITHOUT a sandbox in this embedded engine and can "
                           "read its secrets. Install bubblewrap (TWIN_SANDBOX=auto uses it when it works).")
        return "none"

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
        paths = [inside[k] for k, v in (("code", layout.code), ("env", layout.env)) if v is not None]
        (layout.scratch / "tmp").mkdir(parents=True, exist_ok=True)
        env = _worker_env(inside, cached=layout.cache is not None)
        other = _other_engine(self.python)
        start = ["-m", module] if other is None else ["-c", _BOOT, other, module]
        python = [self.python, "-I", "-B", *start, *args, *[f"--path={p}" for p in paths]]
        if mode == "none":
            return python, env, str(layout.scratch)
        return [*self._bwrap(layout), "--", *python], env, str(layout.scratch)

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

    def _bwrap(self, layout: Layout) -> list[str]:
        binary = shutil.which("bwrap") or "bwrap"
        argv = [binary, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL",
                "--die-with-parent", "--new-session", "--hostname", "twin-worker"]
        for top in ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"):
            path = Path("/") / top
            if path.is_symlink():
                argv += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                argv += ["--ro-bind", str(path), str(path)]
        for name in _ETC:
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        argv += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu",
                 "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm"]
        mounted = [p for p in _python_folders(self.python) if not _under(p, "/usr")]
        for folder in mounted:
            argv += ["--ro-bind", folder, folder]
        for secret in self.hidden:  # a mounted folder holding the data dir shows an empty one there
            real = os.path.realpath(secret)
            if any(_under(real, m) for m in mounted) and os.path.isdir(real):
                argv += ["--tmpfs", real]
        if layout.code is not None:
            argv += ["--ro-bind", str(layout.code), APP_DIR]
        if layout.env is not None:
            argv += ["--ro-bind", str(layout.env), ENV_DIR]
        if layout.cache is not None:
            argv += ["--bind", str(layout.cache), CACHE_DIR]
        if layout.code is not None:  # an app's worker (training, serving): the GPUs it may use
            for device in self.devices:
                argv += ["--dev-bind-try", device, device]
        argv += ["--bind", str(layout.scratch), SCRATCH_DIR, "--bind", str(layout.scratch / "tmp"), "/tmp",
                 "--chdir", SCRATCH_DIR]
        return argv


# What podman or apptainer themselves need from the engine's environment (never a TWIN_* variable)
_RUNTIME_ENV = ("PATH", "HOME", "USER", "LOGNAME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "REGISTRY_AUTH_FILE", "APPTAINER_CACHEDIR",
                "APPTAINER_TMPDIR")


def _worker_env(inside: dict[str, str], *, cached: bool) -> dict[str, str]:
    """A worker's only variables, with its folders as it sees them."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "HOME": inside["scratch"], "TMPDIR": f"{inside['scratch']}/tmp", "USER": "nobody",
           "LOGNAME": "nobody", "MPLCONFIGDIR": f"{inside['scratch']}/tmp", "OMP_NUM_THREADS": "1"}
    if cached:  # compiled kernels (numba's, and what keeps to the XDG cache) outlive a worker
        env |= {"XDG_CACHE_HOME": inside["cache"], "NUMBA_CACHE_DIR": f"{inside['cache']}/numba"}
    return env


def gpu_devices(root: str = "/dev") -> list[str]:
    """The NVIDIA device nodes of this machine (``nvidiactl``, ``nvidia-uvm``, ``nvidia0``...), sorted."""
    import glob

    return sorted(glob.glob(os.path.join(root, "nvidia*")))


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message)
        print(f"\n!!! twinengine: {message}\n", file=sys.stderr, flush=True)
