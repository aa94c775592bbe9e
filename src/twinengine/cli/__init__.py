"""The ``twin`` command line: Typer commands over the SDK (or over a local data dir for admin tasks)."""
