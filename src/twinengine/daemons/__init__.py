"""Background loops over the services (judge, conveyor, reaper): each a ``run_once`` step plus a ``run`` loop."""
