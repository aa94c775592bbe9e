"""Keep credentials out of the server's log: the values of query parameters that carry them are redacted.

A WebSocket producer in a browser cannot set headers, so it may pass its token as ``?token=``; uvicorn writes
the full URL of every request (``uvicorn.access``) and every WebSocket handshake (``uvicorn.error``). The filter
rewrites those lines, and any other that reaches the handlers it is put on, before they are written.
"""

from __future__ import annotations

import logging
import re

__all__ = ["CREDENTIAL_PARAMETERS", "RedactCredentials", "install_log_redaction", "redact"]

CREDENTIAL_PARAMETERS = ("token", "access_token", "id_token", "refresh_token", "api_key", "apikey", "key",
                         "password", "secret", "client_secret", "code", "session", "jwt", "auth",
                         "authorization", "signature", "x-amz-signature", "x-amz-credential", "sig")
_QUERY = re.compile(r"([?&;](?:" + "|".join(re.escape(p) for p in CREDENTIAL_PARAMETERS) + r")=)[^&;#\s\"']*",
                    re.IGNORECASE)
_BEARER = re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_REDACTED = "[redacted]"
_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "twinengine", "")


def redact(text: str) -> str:
    """``text`` with credential query values and bearer tokens replaced by ``[redacted]``."""
    if "=" not in text and "earer" not in text:  # the common line pays one scan
        return text
    return _BEARER.sub(r"\1" + _REDACTED, _QUERY.sub(r"\1" + _REDACTED, text))


class RedactCredentials(logging.Filter):
    """Rewrites a record's text arguments (uvicorn passes the URL as one, and its access formatter reads the
    arguments) and message without dropping it; a message whose template itself holds a credential is
    formatted first, so its placeholders stay matched with their arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and redact(record.msg) != record.msg:
            record.msg, record.args = redact(record.getMessage()), None
            return True
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


_FILTER = RedactCredentials()


def install_log_redaction() -> None:
    """Put the filter on uvicorn's and the engine's loggers and on their handlers (a record a child logger
    propagates passes its ancestors' handlers, not their filters). Idempotent; called once logging is
    configured (uvicorn configures it before it loads the app)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        targets: list[logging.Filterer] = [logger, *logger.handlers]
        for target in targets:
            if _FILTER not in target.filters:
                target.addFilter(_FILTER)
