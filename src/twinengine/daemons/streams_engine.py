"""The stream loops of an engine, all elected: the function worker, the MQTT bridge (when ``mqtt_url`` is set)
and its appender, the buffer sealer and the compactor. ``StreamLoops`` holds their parts (tests reach them
through ``app.state.stream_daemons``) and makes them ``Loop``s for the supervisor."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from twinengine.daemons.engine_parts import EngineParts
from twinengine.daemons.supervisor import Loop, Scope

if TYPE_CHECKING:
    from twinengine.daemons.streams_buffers import BufferSealer
    from twinengine.daemons.streams_compactor import Compactor
    from twinengine.daemons.streams_functions import FunctionWorker
    from twinengine.daemons.streams_mqtt import MqttBridge

__all__ = ["StreamLoops"]

log = logging.getLogger("twinengine.daemons")


class StreamLoops:
    def __init__(self, runtime: EngineParts, *, functions: bool = True, mqtt: bool = True,
                 compaction: bool = True) -> None:
        from twinengine.daemons.streams_buffers import BufferSealer
        from twinengine.daemons.streams_compactor import Compactor
        from twinengine.daemons.streams_functions import FunctionWorker

        self.runtime = runtime
        self.functions: FunctionWorker | None = (
            FunctionWorker(runtime) if functions and runtime.settings.run_functions else None)
        self.mqtt: MqttBridge | None = None
        if mqtt and runtime.settings.mqtt_url:
            from twinengine.daemons.streams_mqtt import MqttBridge

            self.mqtt = MqttBridge(runtime, runtime.settings.mqtt_url)
        self.compactor: Compactor | None = Compactor(runtime) if compaction else None
        self.buffers: BufferSealer = BufferSealer(runtime)

    def _renew_functions(self) -> None:
        """A new term of the loop (this engine elected again) starts from the checkpoints in the store."""
        from twinengine.daemons.streams_functions import FunctionWorker

        if self.functions is not None and self.functions.closed:
            self.functions = FunctionWorker(self.runtime)

    def _wait_functions(self, stop: threading.Event) -> None:
        if self.functions is not None:
            self.functions.wait(stop)

    def loops(self) -> list[Loop]:
        notify = self.runtime.notifier.notify
        loops: list[Loop] = []
        if self.functions is not None:
            loops.append(Loop("functions", lambda: self.functions.run_once() if self.functions else 0,
                              scope=Scope.ELECTED, wait=self._wait_functions, setup=self._renew_functions,
                              teardown=lambda: self.functions.close() if self.functions else None,
                              interrupt=lambda: notify("stop"), backoff=1.0))
        if self.mqtt is not None:
            from twinengine.daemons.streams_mqtt import REFRESH_SECONDS

            bridge = self.mqtt
            loops.append(Loop("mqtt-append", bridge.drain_once, scope=Scope.ELECTED, interval=0.0, rush=True,
                              grace=10.0))
            loops.append(Loop("mqtt", bridge.run_once, scope=Scope.ELECTED, interval=REFRESH_SECONDS,
                              setup=bridge.connect, teardown=bridge.disconnect))
        if self.compactor is not None:
            from twinengine.daemons.streams_compactor import INTERVAL

            loops.append(Loop("compactor", self.compactor.run_once, scope=Scope.ELECTED, interval=INTERVAL))
        loops.append(Loop("buffers", self.buffers.run_pass, scope=Scope.ELECTED, interval=self.buffers.interval))
        return loops
