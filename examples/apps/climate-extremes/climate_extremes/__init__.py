"""Climate extremes under warming pathways, with their uncertainty.

``generator``: the stochastic weather generator (planted warming, rain scaling and vortices); ``indices``:
climate indices with xclim; ``storms``: the cyclone detector, tracker and its scores; ``trends``: trends per
decade, the planted trends, an ensemble's confidence interval; ``stations``: station tables (CSV) and storm
centres as a point collection; ``processes``: the app processes the workflows call.
"""

from climate_extremes import generator, stations, storms, trends

__all__ = ["generator", "stations", "storms", "trends"]
