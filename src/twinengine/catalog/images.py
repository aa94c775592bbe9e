"""OCI image references as an app's manifest names them (``image``): checked at publish, run by
``workers/containers.py`` where the engine has a container runtime."""

from __future__ import annotations

import re

__all__ = ["IMAGE_PATTERN", "check_image"]

# An OCI image reference: [registry[:port]/]path[:tag][@digest], lower-case path components (the
# distribution spec's grammar, without its rarely used corners).
IMAGE_PATTERN = (r"^(?:[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                 r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                 r"(?:@sha256:[a-f0-9]{64})?$")
_IMAGE = re.compile(IMAGE_PATTERN)


def check_image(image: str) -> str:
    """``image`` when it is an OCI image reference, else a ValueError saying what one looks like."""
    if not _IMAGE.match(image):
        raise ValueError(f"{image!r} is not an OCI image reference (registry/name[:tag][@sha256:digest], "
                         "the name in lower case), e.g. ghcr.io/lab/model-env:1.2@sha256:<64 hex digits>")
    return image
