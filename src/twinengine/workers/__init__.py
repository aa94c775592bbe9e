"""Where code the engine did not write runs: sandboxed worker processes (bubblewrap), warm per app version,
speaking a small framed protocol over pipes, each app in an environment of its own."""

from twinengine.workers.pool import WorkerPool
from twinengine.workers.process import Worker, WorkerCrashed, WorkerError, WorkerTimeout
from twinengine.workers.sandbox import Layout, Sandbox, SandboxUnavailable
from twinengine.workers.service import AppWorkers, Workers

__all__ = ["AppWorkers", "Layout", "Sandbox", "SandboxUnavailable", "Worker", "WorkerCrashed", "WorkerError",
           "WorkerPool", "WorkerTimeout", "Workers"]
