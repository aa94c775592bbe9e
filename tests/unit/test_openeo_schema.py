"""openEO's schema types without the parser's graph module (and the GPL-3.0 library it imports)."""

from __future__ import annotations

import json
import subprocess
import sys

RUN = r"""
import json, sys
import twinengine.workflows.engine  # as a served engine imports it
from twinengine.workflows.standard import implementations

implementations()  # every openeo-processes-dask process the engine offers, imported
from twinengine.workflows.dates import _typed
from openeo_pg_parser_networkx.pg_schema import Date
_typed(Date.model_validate("2026-01-02"))
found = {name: name in sys.modules for name in ("yprov4wfs", "openeo_pg_parser_networkx.graph",
                                                 "openeo_processes_dask.process_implementations.cubes")}
from openeo_pg_parser_networkx import OpenEOProcessGraph  # whoever wants the parser still gets it
found["parser"] = OpenEOProcessGraph.__name__
print(json.dumps(found))
"""


def test_the_standard_processes_load_without_the_parser_s_graph_module() -> None:
    """On the code before this module the package's ``__init__`` ran with the first ``pg_schema`` import, and
    with it graph.py and yprov4wfs (GPL-3.0), which the image does not hold."""
    done = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"yprov4wfs": False, "openeo_pg_parser_networkx.graph": False,
                     "openeo_processes_dask.process_implementations.cubes": True, "parser": "OpenEOProcessGraph"}
