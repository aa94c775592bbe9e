"""Background loops over the engine's core: each has ``run_once(...) -> int`` (tests call it) and a ``run()`` loop."""
