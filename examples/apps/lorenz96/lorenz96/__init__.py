"""Lorenz-96: the standard chaotic test bed of data assimilation, as a digital twin."""
