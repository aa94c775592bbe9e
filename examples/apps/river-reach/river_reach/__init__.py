"""River reach DT application: catchment physics and a simulator of the physical twin."""

from river_reach.catchment import Catchment, RatingCurve
from river_reach.simulator import GaugeReading, ReachSimulator

__all__ = ["Catchment", "GaugeReading", "RatingCurve", "ReachSimulator"]
