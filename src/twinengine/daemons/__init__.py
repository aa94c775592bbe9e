"""Background loops over the engine's core: the lake's judge, conveyor and reaper; the workflow runner and
triggers; stream consumers, the MQTT bridge and compaction. Each has a ``run_once`` step that tests call, and
a ``run`` loop with a graceful stop."""
