"""Background loops over the engine's core: the lake's judge, conveyor and reaper; the workflow runner and
triggers; stream consumers, the MQTT bridge and compaction; subscriptions, assimilation, training and
calibrations. Each has a ``run_once``-like step that tests call; the ``Supervisor`` (``daemons.supervisor``)
runs every one of them as a ``Loop``, and elects the process that runs the elected ones."""
