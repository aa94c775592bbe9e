"""Chapters of ``twin demo``, one module per capability, run in the order of ``runner.CHAPTERS``."""
