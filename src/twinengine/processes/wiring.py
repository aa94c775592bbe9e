"""What OGC API - Processes and CWL packages add to a runtime's workflow engine: the ``echo`` and ``ogc_output``
processes (namespace ``ogc``), the openEO process ``run_ogc_application_package`` and the CWL runner its runs
use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.cwl.openeo_process import PACKAGE_SPEC, run_ogc_application_package
from twinengine.cwl.runner import CwlRunner
from twinengine.processes.echo import ECHO_SPEC, echo
from twinengine.processes.nesting import OUTPUT_SPEC, ogc_output

if TYPE_CHECKING:
    from twinengine.config import Settings
    from twinengine.workers.service import Workers
    from twinengine.workflows.engine import WorkflowEngine

__all__ = ["install"]


def install(workflows: WorkflowEngine, settings: Settings, workers: Workers) -> None:
    workflows.registry.register(ECHO_SPEC, echo, cacheable=False, namespace="ogc")
    workflows.registry.register(OUTPUT_SPEC, ogc_output, namespace="ogc")  # nested processes hand on an output
    workflows.registry.register(PACKAGE_SPEC, run_ogc_application_package, cacheable=False)
    workflows.services["cwl"] = CwlRunner.from_settings(settings, workers)
