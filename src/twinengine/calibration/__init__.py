"""Calibration: an app's physical parameters fitted to a twin's observations through the app's own model.

The numerics (``objectives``, ``space``, ``evaluator``, ``methods``, ``summary``, ``plot``) know nothing of the
web layer or the store: they take a function that simulates a batch of parameter sets and return every run,
the best set and a posterior summary. The service around them lives in ``service.py``; its routes in
``api.routes.calibration``.
"""

from __future__ import annotations

from twinengine.calibration.evaluator import BudgetSpent, Evaluator, Run
from twinengine.calibration.methods import METHODS, Method, calibrate
from twinengine.calibration.objectives import Objective
from twinengine.calibration.space import Parameter, Prior, Space
from twinengine.calibration.summary import Summary, summarise

__all__ = ["METHODS", "BudgetSpent", "Evaluator", "Method", "Objective", "Parameter", "Prior", "Run", "Space",
           "Summary", "calibrate", "summarise"]
