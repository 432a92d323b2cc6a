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

__all__ = ["JsonFormatter", "RedactingFilter", "configure_logging", "redact"]

REDACTED = "[REDACTED]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Replaces every occurrence of the given secrets in a record's message and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def _clean(self, text: str) -> str:
        return redact(text, self.secrets)

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
) -> logging.Handler:
    """Send tmdb_ingest's logs (and dependencies' warnings) to stderr, secrets redacted.

    Installs one handler of its own on the root logger, replacing the one a previous
    call installed (a warm Lambda container calls this once per invocation), and leaves
    other handlers alone. Returns the handler.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_tmdb_ingest", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler()
    handler._tmdb_ingest = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(
        JsonFormatter() if json else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("tmdb_ingest").setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler
