"""Workers in an app's own container image (OCI), for sites whose app code needs more than a Python
environment: system libraries, a compiler's runtime, a site-built MPI. An app names the image in its manifest
(``image``); an admin chooses the runtime (``container_runtime``: podman or apptainer, the two that run
unprivileged on HPC nodes). Without one the app's workers run as every other app's do (bubblewrap and the
app's ``requires`` environment), so the embedded default needs no container runtime.

Inside the image a worker sees what a bubblewrap worker sees: the app's code read-only at ``/twin/app``, its
scratch folder at ``/twin/scratch`` (and ``/tmp``), the app version's cache at ``/twin/cache``, no network, no
engine folder, an unprivileged user, and only the variables the engine hands it. The image must hold
``python`` and the ``twinengine`` package of the engine's version, since the worker speaks the engine's
protocol on its standard input and output.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from twinengine.catalog.images import check_image
from twinengine.errors import SandboxUnavailable

__all__ = ["ContainerRuntime", "container_argv", "find_runtime"]

ContainerRuntime = Literal["none", "auto", "podman", "apptainer"]
_RUNTIMES = ("podman", "apptainer")


def find_runtime(setting: ContainerRuntime) -> str | None:
    """The runtime binary app images run with: None for ``none``, or for ``auto`` when neither podman nor
    apptainer is on the PATH; a runtime named outright must be there (``SandboxUnavailable`` otherwise)."""
    if setting == "none":
        return None
    if setting == "auto":
        return next((path for name in _RUNTIMES if (path := shutil.which(name))), None)
    path = shutil.which(setting)
    if path is None:
        raise SandboxUnavailable(f"container_runtime is {setting}, and {setting} is not on the PATH of this "
                                 "machine: install it, or set TWIN_CONTAINER_RUNTIME=none to run apps that name "
                                 "an image in bubblewrap with their requires environment")
    return path


def container_argv(runtime: str, image: str, *, python: list[str], env: dict[str, str], scratch: Path,
                   code: Path | None, cache: Path | None, devices: list[str], mounts: dict[str, str]) -> list[str]:
    """The command line that runs ``python`` (argv inside the image) in ``image`` with ``runtime`` (a path
    to podman or apptainer): the worker's folders bound at ``mounts`` (``code``, ``scratch``, ``cache``: paths
    inside), ``env`` its only variables, no network, and ``devices`` (GPU nodes) passed through."""
    check_image(image)
    binds = [(str(scratch), mounts["scratch"], "rw"), (str(scratch / "tmp"), "/tmp", "rw")]
    if code is not None:
        binds.insert(0, (str(code), mounts["code"], "ro"))
    if cache is not None:
        binds.append((str(cache), mounts["cache"], "rw"))
    if Path(runtime).name == "apptainer":
        argv = [runtime, "exec", "--containall", "--cleanenv", "--no-home",
                "--net", "--network", "none", "--pwd", mounts["scratch"],
                "--bind", ",".join(f"{src}:{dst}:{mode}" for src, dst, mode in binds)]
        if devices:
            argv.append("--nv")  # NVIDIA's driver libraries and devices, as apptainer binds them
        argv += ["--env", ",".join(f"{k}={v}" for k, v in sorted(env.items()))] if env else []
        return [*argv, f"docker://{image}", *python]
    argv = [runtime, "run", "--rm", "-i", "--network=none", "--read-only", "--user=65534:65534",
            "--cap-drop=all", "--security-opt=no-new-privileges", "--pull=missing", "--log-driver=none",
            f"--workdir={mounts['scratch']}"]
    for src, dst, mode in binds:
        argv.append(f"--volume={src}:{dst}:{mode}")
    argv += [f"--device={device}" for device in devices]
    argv += [f"--env={k}={v}" for k, v in sorted(env.items())]
    return [*argv, image, *python]
