"""``twin demo``: start an engine in-process, set the scene, and run the chapters in order.

Everything goes through the SDK over real HTTP against that engine. A capability extends the demo by
adding a chapter (a function of the ``DemoContext``) to ``CHAPTERS``.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.chapters import (
    assimilation,
    calibration,
    calo,
    climate,
    compute,
    cwl,
    dataspace,
    edr,
    ensembles,
    fleet,
    flood,
    identity,
    impacts,
    lake,
    lattice,
    ml,
    operations,
    portal,
    pulsar,
    relations,
    reproducibility,
    streams,
    twins,
    verification,
    virgo,
    workflows,
)
from twinengine.demo.context import Advance, DemoContext, DemoOptions
from twinengine.demo.server import InProcessServer, free_port
from twinengine.runtime import Runtime
from twinengine.stopping import until_stopped

__all__ = ["APP_CHAPTERS", "APP_SETTINGS", "CHAPTERS", "find_app_folder", "run_demo"]

APP_FOLDER_NAME = "river-reach"
PEOPLE = (("ada", "developer"), ("uma", "user"), ("gauge-rr01", "user"))

Chapter = Callable[[DemoContext], None]
CHAPTERS: list[Chapter] = [
    twins.publish_app,
    twins.create_twin,
    twins.gauges_report,
    twins.time_travel,
    twins.what_if,
    twins.plot_history,
    fleet.river_fleet,
    lake.lake_store,
    lake.lake_find,
    edr.rainfall_field,
    workflows.forecast,
    ensembles.forecast_ensemble,
    compute.compute_sites,
    streams.live_gauges,
    verification.verify_forecasts,
    assimilation.assimilate_gauges,
    calibration.calibrate_reach,
    flood.flood_answer,
    ml.retrain_on_drift,
    reproducibility.runs_that_travel,
    dataspace.offer_across_engines,
    cwl.packages_in_and_out,
    relations.river_network,
    identity.groups_and_scopes,
    operations.backup_while_serving,
    portal.portal,
    twins.audit,
]
# ``twin demo --app NAME``: the story of another reference app (the default demo runs river-reach's CHAPTERS)
APP_CHAPTERS: dict[str, list[Chapter]] = {
    APP_FOLDER_NAME: CHAPTERS,
    "lattice-phi4": [twins.publish_app, lattice.flow_sampling],
    "virgo-glitch": [twins.publish_app, virgo.glitch_veto],
    "climate-extremes": [twins.publish_app, climate.extremes],
    "climate-impacts": [twins.publish_app, impacts.drought_and_fire],
    "pulsar-rfi": [twins.publish_app, pulsar.pulsar_search],
    "calo-fastsim": [twins.publish_app, calo.fast_simulation],
}

# Engine settings a story needs: climate-extremes' workers each import xclim and compile its numba kernels
# (about 15 s on a loaded 2-core machine), so one warm worker running the members in turn beats several
# starting at once (45 s against 84 s for the whole demo there).
APP_SETTINGS: dict[str, dict[str, Any]] = {"climate-extremes": {"ensemble_parallel": 1, "workflow_workers": 1}}


def find_app_folder(name: str = APP_FOLDER_NAME) -> Path:
    """A reference app: shipped inside the wheel, or in the source tree next to ``src/``."""
    shipped = resources.files("twinengine").joinpath("_examples").joinpath(name)
    if shipped.is_dir():
        return Path(str(shipped))
    source = Path(__file__).resolve().parents[3] / "examples" / "apps" / name
    if (source / "twinapp.yaml").is_file():
        return source
    raise FileNotFoundError(f"the {name} example app is not installed with this engine")


def _shared_envs() -> Path:
    """App environments outlive a demo's data dir: they are kept in the user's cache (keyed by their lock, so
    sharing is safe) and a later demo of an app with ``requires`` skips the install; ``TWIN_ENVS_DIR`` wins."""
    if os.environ.get("TWIN_ENVS_DIR"):
        return Path(os.environ["TWIN_ENVS_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "twinengine" / "envs"


def _import_app_package(folder: Path) -> Any:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(folder.name.replace("-", "_"))


def _serve_until_interrupted(ctx: DemoContext, say: Callable[[str], None]) -> None:
    """``--serve``: the engine stays up for a person to look around in the portal until Ctrl-C (or SIGTERM),
    whatever signal state the process inherited (``twinengine.stopping``)."""
    say(f"serving the portal at {ctx.url}/ui/ until Ctrl-C; sign in as uma (user) with the token below")
    print(ctx.tokens["uma"], file=sys.stderr, flush=True)  # alone on its line, never wrapped
    until_stopped()
    say("stopped serving")


def _admin_token(runtime: Runtime) -> str:
    """A demo on a data dir an engine used before: a new admin token signed with its key (the first one was
    printed once and kept nowhere)."""
    from datetime import timedelta

    from twinengine.auth.principal import SYSTEM, Role
    from twinengine.auth.service import issue_token

    with runtime.db.session() as session:
        return issue_token(session, runtime.issuer, principal=SYSTEM, name="admin", role=Role.ADMIN,
                           ttl=timedelta(days=1), note="twin demo").token




def run_demo(options: DemoOptions, *, say: Callable[[str], None] = print,
             track: Callable[[str, int], Advance] | None = None,
             finished: Callable[[DemoContext], None] | None = None) -> DemoContext:
    """Run every chapter; returns the context with ``facts`` (machine-readable) and ``summary`` rows. With
    ``options.serve`` the engine keeps serving after ``finished(ctx)`` (which prints the summary) until Ctrl-C."""
    started = time.perf_counter()
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="twin-demo-"))
    # Stream history and workflow results land in the lake on site-a (the lake chapter creates it; another app's
    # story, at its start: demo.chapters.lattice._lake_endpoint); small segments so the live stream closes some
    # for the compactor.
    # The port is chosen before the engine starts so that it knows its own address in the data space (its
    # did:web), which the data-space chapter's partner engine on loopback reaches it by.
    port = free_port()
    runtime = Runtime.from_settings(Settings(data_dir=data_dir, lake_endpoint="site-a", stream_segment_bytes=4096,
                                             envs_dir=_shared_envs(), dataspace_url=f"http://127.0.0.1:{port}",
                                             dataspace_peer_hosts=["127.0.0.1"],
                                             **APP_SETTINGS.get(options.app, {})))
    try:
        admin_token = runtime.start() or _admin_token(runtime)  # kept in memory only
        chapters = APP_CHAPTERS[options.app]
        folder = find_app_folder(options.app)
        with InProcessServer(create_app(runtime=runtime), port=port) as server:
            say(f"engine up at {server.url} (store: {runtime.db.backend}, data: {runtime.data_dir})")
            with Client(server.url, admin_token) as admin:
                tokens = {name: admin.create_token(name, role, expires_in="1d").token for name, role in PEOPLE}
            say("admin issued tokens: ada (developer), uma (user), gauge-rr01 (user, the physical twin's gauges)")
            ctx = DemoContext(options=options, runtime=runtime, url=server.url, admin_token=admin_token,
                              tokens=tokens, app_folder=folder, app_package=_import_app_package(folder), say=say,
                              track=track or (lambda _d, _t: lambda _n: None))
            ctx.summary.append(("engine", f"{server.url} (in-process), store {runtime.db.backend}, "
                                          f"data {runtime.data_dir}"))
            ctx.facts.update(data_dir=str(runtime.data_dir), backend=runtime.db.backend)
            say(f"ready in {time.perf_counter() - started:.1f} s (engine started, app folder found, tokens issued)")
            try:
                for chapter in chapters:
                    began = time.perf_counter()
                    chapter(ctx)
                    took = time.perf_counter() - began
                    ctx.facts.setdefault("chapter_seconds", {})[chapter.__name__] = round(took, 2)
                    say(f"[{time.perf_counter() - started:6.1f} s] {chapter.__name__.replace('_', ' ')}: "
                        f"{took:.1f} s")
                twin = ctx.client("uma").get_twin(ctx.facts["twin_name"])
                ctx.facts["twin"] = twin.model_dump(mode="json")
                ctx.summary.insert(2, ("twin", f"{twin.name} ({twin.id}), owner {twin.owner}, head revision "
                                               f"{twin.head_revision}"))
                ctx.facts["seconds"] = time.perf_counter() - started
                slowest = sorted(ctx.facts["chapter_seconds"].items(), key=lambda kv: -kv[1])[:3]
                ctx.summary.append(("time taken", f"{ctx.facts['seconds']:.1f} s (slowest chapters: " + ", ".join(
                    f"{name.replace('_', ' ')} {seconds:.0f} s" for name, seconds in slowest) + ")"))
                if options.serve:
                    if finished is not None:
                        finished(ctx)
                    _serve_until_interrupted(ctx, say)
            finally:
                ctx.close()
    finally:
        runtime.close()
    if not options.serve:
        say(f"the portal was at {ctx.url}/ui/ while the demo ran; `twin demo --serve` keeps it up, or "
            f"`twin serve --data-dir {shlex.quote(str(runtime.data_dir))}` serves this data again")
        if finished is not None:
            finished(ctx)
    return ctx
