"""River reach DT application: catchment physics and a simulator of the physical twin."""

from river_reach.catchment import Catchment, RatingCurve
from river_reach.rainfield import CATCHMENT_POLYGON, GAUGE, catchment_wkt, rain_field
from river_reach.simulator import Faults, GaugeReading, ReachSimulator, with_faults

__all__ = ["CATCHMENT_POLYGON", "GAUGE", "Catchment", "Faults", "GaugeReading", "RatingCurve", "ReachSimulator",
           "catchment_wkt", "rain_field", "with_faults"]
