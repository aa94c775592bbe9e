"""The portal at ``/ui/``: static pages and ES modules that read and write through the public API only."""

from twinengine.ui.routes import install_ui

__all__ = ["install_ui"]
