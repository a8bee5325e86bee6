"""JSON logging for every medfed process.

Log lines carry a message template and the *names* of things, never request bodies, identifiers,
tokens or keys. Arguments are passed lazily (``log.info("ingested %d resources", n)``); callers must
only pass counts, codes, types and durations. ``extra={"fields": {...}}`` adds structured fields.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure_logging"]


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # Frames and the exception type only: an exception's message can quote input values.
            payload["exc_type"] = record.exc_info[0].__name__
            payload["traceback"] = "".join(traceback.format_tb(record.exc_info[2]))
        return orjson.dumps(payload, default=str).decode()


def configure_logging(level: str = "INFO", *, stream: Any = None) -> None:
    """Install the JSON formatter on the root logger (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's access log prints full URLs, and FHIR search URLs carry identifiers: keep it off.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request URL at INFO; medfed's own outbound calls must not put URLs in logs.
    for client_logger in ("httpx", "httpcore"):
        logging.getLogger(client_logger).setLevel(logging.WARNING)
