"""The HTTP routes of every capability, one module per router; ``api.app`` includes them all."""
