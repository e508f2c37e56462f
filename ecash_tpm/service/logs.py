"""Structured logging: one JSON object per line, tagged with the request id.

Log lines of every party must be machine-readable and correlatable across parties (a payment
touches wallet, merchant and bank), so each request gets an id (taken from a sane incoming
``X-Request-ID`` or generated), it is kept in a :class:`~contextvars.ContextVar` (which follows
the request into FastAPI's worker threads) and :class:`JsonFormatter` adds it to every record.
Nothing is configured at import time; :func:`configure_logging` is called by ``serve()``.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from ecash_tpm.crypto.encoding import b64u_encode

# Context-local (per request / per task), not a process-wide mutable singleton.
_REQUEST_ID: ContextVar[str | None] = ContextVar("ecash_tpm_request_id", default=None)

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}
)
_HANDLER_MARK = "_ecash_tpm_json_handler"
LOGGER_NAMES = ("ecash_tpm", "uvicorn", "uvicorn.error")


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _REQUEST_ID.get()


def json_default(value: Any) -> Any:
    """JSON fallback used for logs and error bodies: bytes as base64url, else ``str()``."""
    if isinstance(value, bytes | bytearray | memoryview):
        return b64u_encode(bytes(value))
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id", ...extra, "exc"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            payload["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in payload and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=json_default, ensure_ascii=False)


def configure_logging(level: str = "info", *, stream: TextIO | None = None) -> logging.Handler:
    """Send ``ecash_tpm.*`` and uvicorn logs as JSON lines to ``stream`` (stderr by default).

    Idempotent: a handler installed by an earlier call is replaced, never duplicated.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _HANDLER_MARK, True)
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
            logger.removeHandler(old)
        logger.setLevel(numeric)
        if name != "uvicorn.error":  # propagates to "uvicorn"
            logger.addHandler(handler)
            logger.propagate = False
    return handler
