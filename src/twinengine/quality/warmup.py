"""The verification scores and the unit registry loaded after start.

The first forecast-skill answer (``/verification``, a view's summary: the portal's flood view asks at once)
imports the ``scores`` package, which imports every part of itself and with them ``scipy.stats`` and
``scipy.optimize`` (about 2 s), and the first manifest or state check with a unit builds pint's registry (about
0.5 s). A served engine does both on a thread once it answers (``twinengine.warmup``; ``/health``:
``"warming": ["verification"]``).
"""

from __future__ import annotations

import importlib

from twinengine.units import check_unit
from twinengine.warmup import Warmup

__all__ = ["ScoresWarmup"]


class ScoresWarmup(Warmup):
    """Imports the scores library and builds the unit registry, once per process."""

    name = "verification"

    def warm(self) -> str:
        importlib.import_module("scores")
        check_unit("m3 s-1")
        return "scores library and unit registry loaded"
