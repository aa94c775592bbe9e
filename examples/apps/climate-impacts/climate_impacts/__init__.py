"""Climate change impacts of extreme events: drought, fire danger and their compound events under rain scenarios.

``generator``: the weather generator with known truth (gamma rain through a copula, planted droughts);
``readers``: daily CF netCDF (CMIP6, CORDEX, E-OBS) and cffdrs station tables, read unchanged;
``standardized``: SPI and SPEI, and the closed form of the drought frequency; ``fire``: the Fire Weather Index
system (climate-indices); ``events``: drought events and their characteristics; ``impacts``: one member's
figures; ``ensemble``: members' figures against the closed form and the planted truth; ``processes``: the app
processes the workflows call.
"""

from climate_impacts import events, generator, readers, standardized

__all__ = ["events", "generator", "readers", "standardized"]
