"""Logging set-up: secrets redacted from every record, JSON lines for CloudWatch.

The library itself never formats a secret into a message; the redaction filter is a
second line of defence for text that comes from elsewhere (a third-party exception, a
URL in a debug message of a dependency).

Structured data goes in as fields, not formatted into the message:
``log.info("summary", extra={FIELDS: summary.as_dict()})`` gives one JSON line whose
top-level keys are the summary's. ``configure_logging(fields=...)`` adds fields to every
line (the Lambda request id, cold start), and :func:`emf_metrics` makes the fields of a
CloudWatch Embedded Metric Format line, so a log line is also a set of metrics.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

__all__ = [
    "FIELDS",
    "JsonFormatter",
    "RedactingFilter",
    "configure_logging",
    "emf_metrics",
    "redact",
]

REDACTED = "[REDACTED]"
FIELDS = "fields"
"""The ``extra`` key whose dict :class:`JsonFormatter` merges into the line's top level."""
_RESERVED = frozenset({"time", "level", "logger", "message", "exception"})


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
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            setattr(record, FIELDS, {k: self._value(v) for k, v in fields.items()})
        return True

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._clean(value)
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (CloudWatch-friendly).

    Then ``fields`` (given once, e.g. the request id), then the record's own
    ``extra={FIELDS: {...}}``, as top-level keys; they never replace the four above.
    """

    def __init__(self, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, FIELDS, None)
        for source in (self.fields, extra if isinstance(extra, dict) else {}):
            entry.update((k, v) for k, v in source.items() if k not in _RESERVED)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


def emf_metrics(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, tuple[float, str]],
    *,
    timestamp_ms: int,
) -> dict[str, Any]:
    """The fields of one CloudWatch Embedded Metric Format line.

    ``metrics`` maps a name to ``(value, unit)`` (``"Count"``, ``"Seconds"``). Log the
    result as fields of one line: CloudWatch then records each metric under
    ``namespace`` with the ``dimensions``, and the line stays readable as a log line.
    """
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": n, "Unit": unit} for n, (_, unit) in metrics.items()],
                }
            ],
        },
        **dimensions,
        **{name: value for name, (value, _) in metrics.items()},
    }


def configure_logging(
    secrets: Iterable[str] = (),
    *,
    verbose: bool = False,
    json: bool = False,
    fields: Mapping[str, Any] | None = None,
) -> logging.Handler:
    """Send tmdb_ingest's logs (and dependencies' warnings) to stderr, secrets redacted.

    With ``json``, each line is a JSON object carrying ``fields`` as well.

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
        JsonFormatter(fields)
        if json
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("tmdb_ingest").setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler
