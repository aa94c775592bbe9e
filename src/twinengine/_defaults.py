"""Defaults the SDK and the command line share, in a module that imports nothing (``twin`` starts fast)."""

__all__ = ["DEFAULT_URL"]

DEFAULT_URL = "http://127.0.0.1:8000"
