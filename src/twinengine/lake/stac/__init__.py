"""The lake's STAC API 1.0 at ``/stac/``: containers as collections, datasets as items, files as assets."""
