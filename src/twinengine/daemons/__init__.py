"""Background loops over the services (stream consumers, MQTT bridge, compaction): ``run_once`` + ``run``."""
