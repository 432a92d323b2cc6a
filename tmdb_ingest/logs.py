"""Logging set-up: secrets redacted from every record, JSON lines for CloudWatch.

The library itself never formats a secret into a message; the redaction filter is a
second line of defence for text that comes from elsewhere (a third-party exception, a
URL in a debug message of a dependency).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

import orjson

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging"]

REDACTED = "[REDACTED]"


class RedactingFilter(logging.Filter):
    """Replaces every occurrence of the given secrets in a record's message and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, redacted, instead of leaving it to the formatter.
            record.exc_text = self._clean(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.msg = self._clean(message)
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (CloudWatch-friendly)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry).decode()


def configure_logging(
    secrets: Iterable[str] = (), *, verbose: bool = False, json: bool = False
) -> None:
    """Send tmdb_ingest's (and its dependencies') logs to stderr, secrets redacted."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    redact = RedactingFilter(secrets)
    for handler in root.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(redact)
        if json:
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.setLevel(logging.WARNING)
    logging.getLogger("tmdb_ingest").setLevel(logging.DEBUG if verbose else logging.INFO)
