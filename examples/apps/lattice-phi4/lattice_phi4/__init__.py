"""Flow-based sampling of two-dimensional real scalar phi^4 theory on a periodic L x L lattice.

``action``: the lattice action and observables (numpy); ``stats``: integrated autocorrelation times and
errors; ``reference``: a local Metropolis chain (the reference); ``flow``: the normalising flow and its
training task; ``processes``: the app processes the workflows call.
"""
