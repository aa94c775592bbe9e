"""Background loops over the engine's core (lake judge, conveyor, reaper; workflow runner and triggers): each
has a ``run_once`` step that tests call, and a ``run`` loop with a graceful stop."""
