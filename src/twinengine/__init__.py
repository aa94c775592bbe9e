"""twinengine: a digital twin engine for science.

``twinengine.Client`` is the Python SDK; ``twin`` is the command line; ``twinengine.api.create_app``
builds the HTTP server.
"""

from twinengine._version import __version__
from twinengine.client import Client

__all__ = ["Client", "__version__"]
