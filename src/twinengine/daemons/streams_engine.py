"""Start and stop the stream daemons that run inside an engine process: the function worker, the MQTT
bridge (when ``mqtt_url`` is set), the buffer sealer and the compactor."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from twinengine.daemons.engine_parts import EngineParts

__all__ = ["StreamDaemons"]

log = logging.getLogger("twinengine.daemons")


class StreamDaemons:
    def __init__(self, runtime: EngineParts, *, functions: bool = True, mqtt: bool = True,
                 compaction: bool = True) -> None:
        from twinengine.daemons.streams_buffers import BufferSealer
        from twinengine.daemons.streams_compactor import Compactor
        from twinengine.daemons.streams_functions import FunctionWorker

        self.runtime = runtime
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.functions = FunctionWorker(runtime) if functions and runtime.settings.run_functions else None
        self.mqtt = None
        if mqtt and runtime.settings.mqtt_url:
            from twinengine.daemons.streams_mqtt import MqttBridge

            self.mqtt = MqttBridge(runtime, runtime.settings.mqtt_url)
        self.compactor = Compactor(runtime) if compaction else None
        self.buffers = BufferSealer(runtime)

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        def guarded() -> None:
            try:
                target(self.stop_event)
            except Exception:
                log.exception("daemon %s stopped on an error", name)

        thread = threading.Thread(target=guarded, name=f"twin-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def start(self) -> None:
        if self.functions is not None:
            self._spawn("functions", self.functions.run)
        if self.mqtt is not None:
            self._spawn("mqtt", self.mqtt.run)
        if self.compactor is not None:
            self._spawn("compactor", self.compactor.run)
        self._spawn("buffers", self.buffers.run)

    def stop(self) -> None:
        self.stop_event.set()
        self.runtime.notifier.notify("stop")
        for thread in self.threads:
            thread.join(timeout=30)
