"""The elected loops of a serving engine: registered with its supervisor by the API's lifespan, they run in the
one process of the data dir (or engine of the store) that wins the election, or at once without one."""

from __future__ import annotations

from importlib.util import find_spec

from twinengine.daemons.assimilation import AssimilationLoop
from twinengine.daemons.compute_heartbeats import heartbeat_loop
from twinengine.daemons.engine_parts import EngineParts
from twinengine.daemons.lake import lake_loops
from twinengine.daemons.streams_engine import StreamLoops
from twinengine.daemons.subscriptions import subscription_loop
from twinengine.daemons.supervisor import Loop, Supervisor
from twinengine.daemons.twin_expiry import expiry_loop

__all__ = ["elected_loops", "register_elected_loops", "train_when_elected"]


def elected_loops(runtime: EngineParts, streams: StreamLoops) -> list[Loop]:
    """The lake's loops (unless ``lake_daemons`` is off), the stream loops, subscriptions, the compute sites'
    heartbeats, assimilation and the twins' expiry. The training loop joins them when the AI lifecycle opens
    (``runtime.ml``)."""
    from twinengine.twin_assimilation.service import Engines

    assimilation = AssimilationLoop(runtime.db, lambda: runtime.streams,
                                    lambda: Engines(hub=runtime.streams, code=runtime.app_code), runtime.notifier)
    return [*(lake_loops(runtime) if runtime.settings.lake_daemons else []), *streams.loops(),
            subscription_loop(runtime), heartbeat_loop(runtime), assimilation.loop(), expiry_loop(runtime)]


def register_elected_loops(supervisor: Supervisor, runtime: EngineParts) -> tuple[StreamLoops, list[str]]:
    """Register the elected loops; returns the stream loops' parts and the names registered (a name registered
    before is kept)."""
    streams = StreamLoops(runtime)
    return streams, [loop.name for loop in elected_loops(runtime, streams) if supervisor.add(loop)]


def train_when_elected(supervisor: Supervisor, runtime: EngineParts) -> None:
    """Open the AI lifecycle when this process is elected (when PyTorch is installed): the other processes
    queue runs for it without waking it, so its training loop must run from the start."""
    if find_spec("torch") is not None:
        supervisor.on_elected(lambda: runtime.ml)
