"""``twin demo``: the engine in-process, the river-reach app, a simulated physical twin, a summary."""
