"""Heartbeat probes, one per site kind: does the site answer now? Each returns None when it does, or the
reason it does not. The local site always answers; a Dask scheduler must accept a connection and answer
its identity; Slurm's ``sinfo`` must answer; another engine's ``/health`` must say it is up."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from twinengine.compute.addresses import host_port
from twinengine.store import guard

__all__ = ["PROBES", "probe"]

TIMEOUT = 10.0


def _local(address: str | None, options: dict[str, Any], credential: dict[str, str] | None) -> str | None:
    return None


def _dask(address: str | None, options: dict[str, Any], credential: dict[str, str] | None) -> str | None:
    """The scheduler's identity through a short-lived client (Dask's own comm, so TLS works too)."""
    import asyncio

    async def identity() -> None:
        from distributed.comm import core

        connect: Any = core.connect  # untyped in distributed
        comm = await connect(address, timeout=TIMEOUT / 2)
        try:
            await comm.write({"op": "identity", "reply": True})
            await asyncio.wait_for(comm.read(), TIMEOUT)
        finally:
            comm.abort()  # a polite close waits on a peer that stopped answering

    try:  # bounded as a whole: a stopped scheduler's kernel still accepts connections, nothing else answers
        asyncio.run(asyncio.wait_for(identity(), TIMEOUT * 1.5))
    except Exception as exc:  # any failure is the site not answering
        return f"the scheduler at {address} does not answer: {type(exc).__name__}: {exc}"[:500]
    return None


def _slurm(address: str | None, options: dict[str, Any], credential: dict[str, str] | None) -> str | None:
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return "sinfo is not installed on the engine's host"
    args = [sinfo, "-h", "-o", "%a %D"]
    if options.get("partition"):
        args += ["-p", str(options["partition"])]
    env = {**os.environ, **({"SLURM_CONF": str(options["slurm_conf"])} if options.get("slurm_conf") else {})}
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo did not answer: {exc}"[:500]
    if done.returncode:
        return f"sinfo failed ({done.returncode}): {done.stderr.strip()}"[:500]
    if not done.stdout.strip():
        return "sinfo lists no partition" + (f" {options['partition']}" if options.get("partition") else "")
    return None


def _engine(address: str | None, options: dict[str, Any], credential: dict[str, str] | None) -> str | None:
    import httpx2 as httpx

    host, port = host_port(address or "")
    headers = {"Authorization": f"Bearer {credential['token']}"} if credential and credential.get("token") else {}
    try:
        answer = httpx.get(f"{(address or '').rstrip('/')}/health", headers=headers, timeout=TIMEOUT,
                           follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"the engine at {host}:{port} does not answer: {type(exc).__name__}"
    if answer.status_code != 200:
        return f"the engine at {host}:{port} answers {answer.status_code} on /health"
    return None


Probe = Callable[[str | None, dict[str, Any], dict[str, str] | None], str | None]
PROBES: dict[str, Probe] = {"local": _local, "dask": _dask, "slurm": _slurm, "engine": _engine}


def probe(kind: str, address: str | None, options: dict[str, Any], credential: dict[str, str] | None) -> str | None:
    """None when the site answers, else why not. It may wait up to its timeout (``sinfo`` in a process of its
    own, where the socket checks do not see it): never inside a write transaction (``store.guard``)."""
    if kind != "local":
        guard.blocking(f"a probe of a {kind} site")
    return PROBES[kind](address, options, credential)
