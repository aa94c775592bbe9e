"""Twins: instances of DT applications with an event-sourced state (reported and desired), history,
time travel, diffs and what-if forks."""
