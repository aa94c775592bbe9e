"""The demo's story, step by step, all through the SDK over real HTTP against an in-process engine:

a developer publishes river-reach; a user creates a twin and sets an alert threshold; the gauges of the
physical twin (simulated) report for some hours; the user travels back in time, diffs revisions, forks a
what-if twin with wetter soils and replays the same rain on it; the engine's audit log saw it all.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from twinengine.api import create_app
from twinengine.client import Client
from twinengine.config import Settings
from twinengine.demo.plot import plot_levels
from twinengine.demo.server import InProcessServer
from twinengine.errors import TwinNameTaken
from twinengine.runtime import Runtime
from twinengine.twins.schemas import TwinRead, TwinState

__all__ = ["DemoOptions", "DemoResult", "find_app_folder", "run_demo"]

APP_FOLDER_NAME = "river-reach"
STATION = "RR-01"
ALERT_THRESHOLD_M = 1.8
WHAT_IF_RUNOFF = 0.7


@dataclass
class DemoOptions:
    data_dir: Path | None = None
    hours: float = 72.0
    step_minutes: int = 15
    seed: int = 7
    plot: Path | None = None
    start: datetime = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class DemoResult:
    data_dir: Path
    url: str
    backend: str
    app_ref: str
    app_sha256: str
    twin: TwinRead
    fork: TwinRead
    steps: int
    revisions_written: int
    write_seconds: float
    last_state: TwinState
    peak_level: tuple[datetime, float]
    alert_steps: int
    travel_time: datetime
    travel_level: float
    travel_revision: int
    diff_changes: int
    fork_revision: int
    fork_peak_level: float
    observed_peak_after_fork: float
    origin_untouched: bool
    audit_events: int
    plot: Path
    seconds: float
    notes: list[str] = field(default_factory=list)


def find_app_folder() -> Path:
    """The reference app: shipped inside the wheel, or in the source tree next to ``src/``."""
    shipped = resources.files("twinengine").joinpath("_examples").joinpath(APP_FOLDER_NAME)
    if shipped.is_dir():
        return Path(str(shipped))
    source = Path(__file__).resolve().parents[3] / "examples" / "apps" / APP_FOLDER_NAME
    if (source / "twinapp.yaml").is_file():
        return source
    raise FileNotFoundError("the river-reach example app is not installed with this engine")


def _import_app_package(folder: Path) -> Any:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module("river_reach")


def _free_name(client: Client, base: str) -> str:
    taken = {t.name for t in client.list_twins(limit=500).items}
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


Step = Callable[[str], None]


def run_demo(options: DemoOptions, *, say: Step = print, progress: Callable[[int], Any] | None = None,
             on_total: Callable[[int], None] | None = None) -> DemoResult:
    """Run the whole story; ``say`` narrates, ``progress(n)`` advances by n simulated steps."""
    started = time.perf_counter()
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="twin-demo-"))
    settings = Settings(data_dir=data_dir)
    runtime = Runtime.from_settings(settings)
    try:
        admin_token = runtime.start() or (settings.data_dir / "admin.token").read_text().strip()
        folder = find_app_folder()
        reach = _import_app_package(folder)
        with InProcessServer(create_app(runtime=runtime)) as server:
            say(f"engine up at {server.url} (store: {runtime.db.backend}, data: {settings.data_dir})")
            with Client(server.url, admin_token) as admin:
                tokens = {name: admin.create_token(name, role, expires_in="1d").token
                          for name, role in (("ada", "developer"), ("uma", "user"), ("gauge-rr01", "user"))}
            say("admin issued tokens: ada (developer), uma (user), gauge-rr01 (user, the physical twin's gauges)")
            with Client(server.url, tokens["ada"]) as ada, Client(server.url, tokens["uma"]) as uma, \
                    Client(server.url, tokens["gauge-rr01"]) as gauge:
                result = _story(options, say, progress, on_total, server.url, runtime, reach, folder, ada, uma,
                                gauge, admin_token)
    finally:
        runtime.close()
    result.seconds = time.perf_counter() - started
    return result


def _story(options: DemoOptions, say: Step, progress: Callable[[int], Any] | None,
           on_total: Callable[[int], None] | None, url: str, runtime: Runtime, reach: Any, folder: Path,
           ada: Client, uma: Client, gauge: Client, admin_token: str) -> DemoResult:
    published = ada.publish_app(folder)
    app = published.app
    say(f"ada published {app.name}@{app.version} (sha256 {app.archive_sha256[:16]}…, "
        f"{'new' if published.created else 'identical content already there'})")

    name = _free_name(uma, "demo-reach")
    try:
        twin = uma.create_twin(f"{app.name}@{app.version}", name, {"station": STATION},
                               description="River reach at gauge RR-01 (simulated)")
    except TwinNameTaken:  # someone took it between our look and our create
        twin = uma.create_twin(f"{app.name}@{app.version}", f"{name}-{int(time.time())}", {"station": STATION})
    uma.grant(twin.name, "gauge-rr01", "operate")
    uma.desire(twin.name, alert_threshold=ALERT_THRESHOLD_M, message="alert above 1.8 m")
    say(f"uma created twin {twin.name} ({twin.id}), granted the gauges 'operate', desired alert_threshold "
        f"{ALERT_THRESHOLD_M} m")

    # The physical twin: gauges report every step; the station reads its desired threshold now and then.
    params = twin.parameters
    simulator = reach.ReachSimulator(
        STATION, reach.Catchment.from_parameters(params),
        reach.RatingCurve(params["rating_a"], params["rating_b"], params["datum_m"]),
        start=options.start, step=timedelta(minutes=options.step_minutes), seed=options.seed)
    steps = round(options.hours * 60 / options.step_minutes)
    if on_total:
        on_total(steps)
    threshold = ALERT_THRESHOLD_M
    alert_steps, written = 0, 0
    peak = (options.start, float("-inf"))
    write_started = time.perf_counter()
    for i, reading in enumerate(simulator.readings(options.hours)):
        if i % 4 == 0:
            desired = gauge.get_state(twin.name).desired.get("alert_threshold")
            threshold = float(desired.value) if desired else threshold
        alert = reading.level > threshold
        alert_steps += alert
        if reading.level > peak[1]:
            peak = (reading.time, reading.level)
        gauge.report(twin.name, timestamp=reading.time, rain=reading.rain, level=reading.level,
                     discharge=reading.discharge, storage=reading.storage, alert=alert)
        written += 1
        if progress:
            progress(1)
    write_seconds = time.perf_counter() - write_started
    last = uma.get_state(twin.name)
    head = last.revision or 0
    say(f"the gauges reported {written} readings: revisions 3..{head}, peak level {peak[1]:.2f} m at "
        f"{peak[0]:%Y-%m-%d %H:%M}, alert on {alert_steps} steps")

    # Time travel to six hours before the peak: the state as of a time (values' timestamps) and as of the
    # matching revision, and a diff from there to now.
    travel_time = max(peak[0] - timedelta(hours=6), options.start + timedelta(minutes=options.step_minutes))
    past = uma.get_state(twin.name, at=travel_time)
    past_level = past.reported["level"]
    diff = uma.diff(twin.name, past_level.revision, head)
    by_revision = uma.get_state(twin.name, revision=past_level.revision)
    if by_revision.reported["level"].value != past_level.value:
        raise RuntimeError("state as of a time and as of the matching revision disagree")
    say(f"time travel: at {travel_time:%Y-%m-%d %H:%M} the level was {past_level.value:.2f} m "
        f"(revision {past_level.revision}); {len(diff.changes)} properties changed since")

    # What-if: fork at that revision with wetter soils and replay the observed rain through the app's model.
    fork = uma.fork_twin(twin.name, f"{twin.name}-wetter", at_revision=past_level.revision,
                         parameters={"runoff_coefficient": WHAT_IF_RUNOFF},
                         description="What if the soils had been saturated?")
    fork_state = uma.get_state(fork.name)
    catchment = reach.Catchment.from_parameters(fork.parameters)
    catchment.storage_mm = float(fork_state.reported["storage"].value)
    rating = reach.RatingCurve(params["rating_a"], params["rating_b"], params["datum_m"])
    rain_after = uma.history(twin.name, "rain", since=past_level.timestamp + timedelta(seconds=1), limit=100_000)
    step_h = options.step_minutes / 60
    fork_times, fork_levels = [], []
    for value in rain_after.items:
        level = rating.level(catchment.step(float(value.value), step_h))
        uma.report(fork.name, timestamp=value.timestamp, rain=value.value, level=round(level, 4),
                   discharge=round(catchment.discharge(), 3), storage=round(catchment.storage_mm, 3),
                   message="what-if replay")
        fork_times.append(value.timestamp)
        fork_levels.append(level)
    origin_after = uma.get_twin(twin.name)
    untouched = origin_after.head_revision == head
    if not untouched:
        raise RuntimeError("writing to the fork changed the origin")
    level_hist = uma.history(twin.name, "level", limit=100_000)
    observed_after = max((v.value for v in level_hist.items if v.timestamp > past_level.timestamp), default=0.0)
    fork_peak = max(fork_levels, default=float("nan"))
    say(f"what-if fork {fork.name} from revision {past_level.revision} (runoff {WHAT_IF_RUNOFF}): peak "
        f"{fork_peak:.2f} m vs {observed_after:.2f} m observed; origin untouched")

    rain_hist = uma.history(twin.name, "rain", limit=100_000)
    plot_path = options.plot or (runtime.data_dir / "river-reach-level.png")
    plot_levels(plot_path, times=[v.timestamp for v in level_hist.items], levels=[v.value for v in level_hist.items],
                rain=[v.value for v in rain_hist.items], threshold=ALERT_THRESHOLD_M, fork_times=fork_times,
                fork_levels=fork_levels, fork_label=f"what-if: runoff {WHAT_IF_RUNOFF} ({fork.name})",
                title=f"{twin.name}: level history read back from the twin's state log")
    with Client(url, admin_token) as admin:
        audit_total = admin.audit(limit=1).total
    return DemoResult(
        data_dir=runtime.data_dir, url=url, backend=runtime.db.backend, app_ref=f"{app.name}@{app.version}",
        app_sha256=app.archive_sha256, twin=origin_after, fork=uma.get_twin(fork.name), steps=steps,
        revisions_written=written, write_seconds=write_seconds, last_state=last, peak_level=peak,
        alert_steps=alert_steps, travel_time=travel_time, travel_level=float(past_level.value),
        travel_revision=past_level.revision, diff_changes=len(diff.changes), fork_revision=past_level.revision,
        fork_peak_level=fork_peak, observed_peak_after_fork=float(observed_after), origin_untouched=untouched,
        audit_events=audit_total, plot=plot_path, seconds=0.0,
    )
