"""FastAPI assembly: ``create_app(settings)`` builds the engine's HTTP surface from a runtime."""

from twinengine.api.app import create_app

__all__ = ["create_app"]
