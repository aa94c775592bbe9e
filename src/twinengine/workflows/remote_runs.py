"""A run placed on a site of kind ``engine``: another twinengine, reached through its public REST API with the
site's credential (an identity the other engine's provider gave this one).

The whole run goes there: its process graph and the parameters its caller gave, as an ad-hoc run of that
identity, which the other engine evaluates with its own processes, data and executors. This engine follows it
(its status and progress, read every ``POLL_SECONDS``), stops it when the run is canceled here, and once it has
finished copies its result assets here, each checked against the checksum the other engine gave it, so the
run's results, value and provenance are here as for any run. Its usage is the other engine's record of that run
(core-seconds, GPU-seconds, as that engine measured them), charged here to this run's owner, from the source
``engine:<site>``. An engine that stops answering is a site lost: the site is probed and marked down, and the
run placed again elsewhere (``workflows.run_faults``).

A run on a twin does not go there: the twin's state and streams are here (``compute.placement`` keeps such a
run off engine sites).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from twinengine.errors import EngineUnavailable, ProcessFailed
from twinengine.transport import Transport
from twinengine.workflows.client import WorkflowsClient
from twinengine.workflows.results import Asset, ResultStore, file_sha256
from twinengine.workflows.schemas import FINAL


class RunOutputs(Protocol):
    """What of a run's context this module fills: its results (``workflows.context.RunContext`` has them;
    named by shape, as the executors this module is one of are imported by the evaluator's modules)."""

    run_id: str
    results: ResultStore
    assets: list[Asset]

__all__ = ["MISSED_POLLS", "POLL_SECONDS", "RemoteEngine", "run_remotely"]

log = logging.getLogger("twinengine.workflows")

POLL_SECONDS = 0.5
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")  # a result's name: one file, no path
MISSED_POLLS = 3  # polls in a row without an answer before the site is probed (a blip is not a lost site)
REMOTE_SOURCE = "engine"  # the usage source of what another engine measured: ``engine:<site>``


class RemoteEngine:
    """The executor of a site of kind ``engine``: it computes no task graph here; the runner hands it whole
    runs (``run_remotely``)."""

    name = "engine"
    remote = True

    def __init__(self, address: str, credential: dict[str, str] | None, *, timeout: float = 30.0) -> None:
        token = (credential or {}).get("token") or (credential or {}).get("password")
        self.address = address.rstrip("/")
        self.transport = Transport(self.address, token, timeout=timeout)
        self.workflows = WorkflowsClient(self.transport)

    def compute(self, *items: Any, **_: Any) -> Any:
        raise ProcessFailed(f"the engine at {self.address} runs whole runs, not tasks of this one")

    def close(self) -> None:
        self.transport.close()


def _user_parameters(process: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The values of the parameters the process declares (the other engine binds its own run's id)."""
    declared = {p.get("name") for p in process.get("parameters") or [] if isinstance(p, dict)}
    return {k: v for k, v in parameters.items() if k in declared}


def run_remotely(remote: RemoteEngine, ctx: RunOutputs, *, site: str, process: dict[str, Any],
                 parameters: dict[str, Any], options: dict[str, Any], log_line: Callable[[str, str], None],
                 progress: Callable[[int, int], None], check: Callable[[], None],
                 charge: Callable[[float, float, str], None], note: Callable[[dict[str, Any]], None]) -> Any:
    """Run the whole run on the engine of ``site`` and bring its results here; returns what the runner's
    evaluation would (``{"saved": True}``: the assets are in ``ctx.assets``). ``progress`` is told the other
    run's percent (it also raises ``SiteLost`` once the site is down), ``check`` raises once the run is
    canceled here, ``charge`` takes (core-seconds, GPU-seconds, source) of the other engine's usage record, ``note`` the
    other run's reference (kept in the run's options: its provenance names it)."""
    submitted = remote.workflows.submit(process, _user_parameters(process, parameters),
                                        no_cache=bool(options.get("no_cache")))
    other = submitted.id
    note({"site": site, "run": other, "engine": remote.address})
    log_line("info", f"sent to site {site}: run {other} of the engine at {remote.address}")
    try:
        run = _follow(remote, other, site, progress, check)
    except BaseException:  # canceled here, or the engine lost: one that comes back should not finish it for nobody
        _stop(remote, other, site)
        raise
    core, gpu = _usage(remote, other, submitted.created_at)
    charge(core, gpu, f"{REMOTE_SOURCE}:{site}")
    if run.status != "finished":
        error = run.error or {}
        code, message = error.get("code", "Internal"), error.get("message", run.status)
        raise ProcessFailed(f"on site {site} (run {other}): {code}: {message}",
                            details=[{"site": site, "run": other, "code": code}])
    folder = ctx.results.scratch(ctx.run_id)
    for asset in run.assets or []:
        name = str(asset.get("name", ""))
        if not _SAFE_NAME.fullmatch(name):  # another engine names its files; it names no place here
            raise ProcessFailed(f"run {other} on site {site} has a result named {name[:80]!r}, which is not a file "
                                "name")
        path = remote.workflows.download(other, name, folder / name)
        if asset.get("sha256") and file_sha256(path) != asset["sha256"]:
            raise ProcessFailed(f"result {name} of run {other} on site {site} does not match its checksum")
        ctx.assets.append(ctx.results.keep(ctx.run_id, path, name=name, media_type=str(asset.get("type", "")),
                                           fmt=str(asset.get("format", ""))))
    log_line("info", f"run {other} on site {site} finished; {len(run.assets or [])} result(s) copied here")
    return {"saved": True}


def _follow(remote: RemoteEngine, other: str, site: str, progress: Callable[[int, int], None],
            check: Callable[[], None]) -> Any:
    """Poll the other run until it ends. ``MISSED_POLLS`` polls in a row without an answer raise
    ``EngineUnavailable``: the runner then probes the site, and moves the run when the site is down."""
    missed = 0
    while True:
        check()
        try:
            run = remote.workflows.get(other)
        except EngineUnavailable as exc:
            missed += 1
            log.info("run %s on site %s: no answer (%s)", other, site, exc)
            if missed >= MISSED_POLLS:
                raise
            time.sleep(POLL_SECONDS)
            continue
        missed = 0
        if run.status in FINAL:
            return run
        progress(int(min(100.0, max(0.0, run.progress or 0.0))), 100)  # the other engine's percent
        time.sleep(POLL_SECONDS)


def _stop(remote: RemoteEngine, other: str, site: str) -> None:
    try:
        remote.workflows.cancel(other)
    except Exception as exc:  # the engine may be gone: nothing more to do
        log.info("run %s on site %s could not be stopped: %s", other, site, exc)


def _usage(remote: RemoteEngine, other: str, since: datetime | None) -> tuple[float, float]:
    """(core-seconds, GPU-seconds) of the other engine's usage records of its run (0 when it keeps none
    that this identity may read)."""
    from twinengine.compute.client import ComputeClient

    try:
        page = ComputeClient(remote.transport).usage_records(since=since - timedelta(minutes=1) if since else None)
    except Exception as exc:  # its figures are missing from this run's record, not the run's result
        log.info("the usage of run %s could not be read: %s", other, exc)
        return 0.0, 0.0
    mine = [r for r in page.items if r.run_id == other]
    return sum(r.core_seconds for r in mine), sum(r.gpu_seconds for r in mine)
