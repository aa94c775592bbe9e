"""Hymod as a DT application: the model in ``model.py``, called by the engine's calibration."""
