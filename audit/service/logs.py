"""The service's structured log: one JSON object per line, of requests and events, never a secret or a person.

Lines name accounts (id and role), scan job ids, route templates ("/api/v1/people/{pid}", never the person id in
the path) and statuses; never tokens, passwords, cookies, query strings, client addresses, file names or person ids.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("audit.service.events")
FORMATS = ("json", "text")
LEVELS = ("debug", "info", "warning", "error")
# The service's events and errors, webhook delivery warnings, and uvicorn's start/stop lines.
LOGGERS = ("audit.service", "audit.notify", "uvicorn.error")


def event(name: str, level: int = logging.INFO, **fields) -> None:
    """Log one event (`scan.queued`, `login.failed`, ...) with plain fields: ids, counts, statuses."""
    log.log(level, name, extra={"fields": fields})


class JsonLines(logging.Formatter):
    """A record as one JSON object: time, level, event, then its fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "event": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.name != log.name:  # another logger's message (uvicorn, the app's error handler)
            line.update(event="message", logger=record.name, message=record.getMessage())
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(line, default=str)


class Text(logging.Formatter):
    """A record as one readable line: time, level, event, key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        text = f"{when} {record.levelname.lower()} {record.getMessage()} {fields}".rstrip()
        return text + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def configure(fmt: str = "json", level: str = "info", file: Path | None = None) -> logging.Handler:
    """Send the service's loggers (events, errors, uvicorn's) to stderr or a file, one line per record."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else Text())
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    return handler


def unconfigure(handler: logging.Handler) -> None:
    """Undo configure() when the server has stopped (a test may run several servers in one process)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if handler in logger.handlers:
            logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
    handler.close()
