"""Fast simulation of electromagnetic showers in the CaloChallenge 2022 dataset-2 calorimeter.

``geometry``: layers and bins; ``gflash``: the shower parametrisation; ``simulator``: showers from it (numpy);
``calofile``: HDF5 and ROOT files; ``features`` and ``metrics``: the challenge's high-level features and
distances; ``coding``, ``network`` and ``surrogate``: a shower's layers as continuous coordinates, the
generative surrogate and its training task (PyTorch); ``processes``: the app process the workflow calls.
"""
