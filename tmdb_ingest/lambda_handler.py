"""AWS Lambda entry point: event + context -> settings -> :func:`ingest_csv` -> summary.

The event is an S3 put notification for the uploaded CSV, or ``{"csv": "s3://...",
"run_id": ..., "shard": "I/N"}`` (both optional), or ``{"refresh": {}}`` (optionally
``{"refresh": {"until": "YYYY-MM-DD"}}``): a :func:`~tmdb_ingest.lake.refresh.refresh`
of the lake in ``TMDB_INGEST_BUCKET``, the daily schedule's event. Settings come from
the environment (``docs/configuration.md``); the output bucket defaults to the CSV's. It returns the
summary dict: ``done: false`` means invoke again with its ``run_id``; ``busy: true``
(another invocation holds the run) means the same, after a wait. The budget is the
remaining time less a margin (1%, 2..10 s) for what lies outside the library's own
budget: closing the loop and clients, returning, clock skew. Inside its budget the
library keeps back only what it measures it needs (``deadline.py``), so an invocation
works for about 98% of its timeout.

Errors: a bad event, setting or CSV raises ``InputError`` / ``ConfigError`` before any
request. A fatal stop (key rejected, bucket denied) raises :class:`IngestFailed`, one
line with the reason and the summary so far (``error`` set), which a Step Functions
``Catch`` routes apart from Lambda's own, retryable errors. Everything is created inside
each invocation's ``asyncio.run``, so a warm container can be invoked again.

Logs are JSON lines with their data as fields (the summary's on the ``summary`` line),
each with ``request_id`` and ``cold_start``. One line per invocation is CloudWatch
Embedded Metric Format: namespace ``tmdb_ingest``, dimension ``function``, counts
``fetched``, ``not_found``, ``failed``, ``requests``, ``throttled``, and ``elapsed`` (s).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from typing import Any
from urllib.parse import unquote_plus

import orjson

from tmdb_ingest.api import ingest_csv
from tmdb_ingest.config.credentials import credentials_from_env
from tmdb_ingest.config.settings import Settings, Shard
from tmdb_ingest.errors import ConfigError, FatalError, IngestFailed, InputError, RunBusy
from tmdb_ingest.logs import FIELDS, configure_logging, emf_metrics, redact
from tmdb_ingest.s3 import S3Uri
from tmdb_ingest.summary import Summary, marked, one_line

__all__ = [
    "METRICS_NAMESPACE",
    "IngestFailed",
    "handler",
    "parse_event",
    "parse_refresh_event",
    "safety_margin",
]

log = logging.getLogger("tmdb_ingest")

METRICS_NAMESPACE = "tmdb_ingest"
_COUNTS = ("fetched", "not_found", "failed", "requests", "throttled")
_cold_start = True  # the first invocation of this container


def safety_margin(remaining_s: float) -> float:
    """Seconds kept back from the invocation's remaining time: 1%, within 2..10 s."""
    return min(10.0, max(2.0, 0.01 * remaining_s))


def parse_event(event: Any) -> tuple[str, str | None, Shard | None]:
    """``(csv_uri, run_id, shard)`` from an S3 notification or a ``{"csv": ...}`` event."""
    if isinstance(event, dict) and "Records" in event:
        records = event["Records"]
        try:
            (record,) = records
            s3 = record["s3"]
            bucket, key = s3["bucket"]["name"], unquote_plus(s3["object"]["key"])
        except (TypeError, ValueError, KeyError):
            raise InputError(
                "event: an S3 notification needs exactly one record with "
                "s3.bucket.name and s3.object.key"
            ) from None
        return str(S3Uri(bucket, key)), None, None
    if not isinstance(event, dict) or not isinstance(event.get("csv"), str):
        shown = sorted(event) if isinstance(event, dict) else type(event).__name__
        raise InputError(
            'event: expected an S3 notification or {"csv": "s3://bucket/key", '
            f'"run_id": ..., "shard": "I/N"}}, got {shown}'
        )
    csv = event["csv"]
    try:
        S3Uri.parse(csv)
    except ValueError:
        raise InputError(f"event: csv must be an s3://bucket/key URI, got {csv!r}") from None
    run_id, shard = event.get("run_id"), event.get("shard")
    if run_id is not None and not isinstance(run_id, str):
        raise ConfigError("run_id", f"must be a string, got {run_id!r}")
    if shard is not None and not isinstance(shard, str):
        raise ConfigError("shard", f'must be a string such as "0/4", got {shard!r}')
    return csv, run_id or None, Shard.parse(shard) if shard else None


def parse_refresh_event(event: Any) -> tuple[bool, dt.date | None]:
    """``(is it a refresh event, its until)``: ``{"refresh": {}}`` or with ``"until"``."""
    if not isinstance(event, dict) or "refresh" not in event:
        return False, None
    body = event["refresh"]
    if body is None:
        body = {}
    if not isinstance(body, dict) or set(body) - {"until"}:
        raise InputError(f'event: expected {{"refresh": {{"until": "YYYY-MM-DD"}}}}, got {body!r}')
    until = body.get("until")
    if until is None:
        return True, None
    try:
        return True, dt.date.fromisoformat(str(until))
    except ValueError:
        raise InputError(f"event: refresh.until must be a date YYYY-MM-DD, got {until!r}") from None


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run (or resume) one invocation's share of the job; return the summary dict."""
    global _cold_start
    started = time.monotonic()
    fields = {"request_id": getattr(context, "aws_request_id", None), "cold_start": _cold_start}
    _cold_start = False
    remaining = context.get_remaining_time_in_millis() / 1000
    configure_logging(json=True, fields=fields)
    is_refresh, until = parse_refresh_event(event)
    csv, run_id, shard = (None, None, None) if is_refresh else parse_event(event)
    budget = remaining - safety_margin(remaining)
    if budget < 1.0:
        raise ConfigError("time_budget", f"only {remaining:.1f} s left: raise the timeout")
    log.info(
        "invocation",
        extra={FIELDS: {"csv": csv, "run_id": run_id, "shard": str(shard or Shard()),
                        "budget_s": round(budget, 1),
                        **({"refresh_until": str(until)} if is_refresh else {})}},
    )  # fmt: skip
    function = getattr(context, "function_name", None) or "tmdb-ingest"
    try:
        result = asyncio.run(_invoke(csv, run_id, shard, budget, started, fields, until))
    except IngestFailed as exc:
        _log_metrics(function, exc.summary.as_dict() if exc.summary else {}, started)
        raise
    _log_metrics(function, result, started)
    return result


async def _invoke(
    csv: str | None, run_id: str | None, shard: Shard | None, budget: float, started: float,
    fields: dict[str, Any], until: dt.date | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One invocation: ``ingest_csv(csv)``, or a refresh of the lake when ``csv`` is None."""
    env = os.environ
    overrides: dict[str, Any] = {"time_budget": budget, **await credentials_from_env(env)}
    if run_id:
        overrides["run_id"] = run_id
    if shard:
        overrides["shard"] = shard
    if not env.get("TMDB_INGEST_BUCKET") and csv is not None:
        overrides["bucket"] = S3Uri.parse(csv).bucket
    settings = Settings.from_env(env, **overrides)
    configure_logging(settings.secrets(), json=True, fields=fields)
    try:
        holder = f"lambda:{fields['request_id']}" if fields.get("request_id") else None
        if csv is None:
            from tmdb_ingest.lake.refresh import refresh

            summary: Summary = await refresh(
                settings, until=until, started_at=started, holder=holder
            )
        else:
            summary = await ingest_csv(csv, settings, started_at=started, holder=holder)
    except RunBusy as exc:
        result = (
            marked(exc.summary, exc).as_dict() if exc.summary else {"done": False, "busy": True}
        )
        log.warning("busy: %s", one_line(exc), extra={FIELDS: result})
        return result
    except FatalError as exc:
        reason = redact(one_line(exc), settings.secrets())  # a second line of defence
        failed = exc.summary if isinstance(exc.summary, Summary) else None
        failed = marked(failed, exc, reason=reason) if failed is not None else None
        data = failed.as_dict() if failed else {"done": False, "error": reason}
        message = f"{reason}; summary so far: {orjson.dumps(data).decode()}"
        log.error("fatal: %s", message, extra={FIELDS: data})
        error = IngestFailed(message)
        error.summary = failed
        raise error from None
    again = "" if summary.done else f": not done, invoke again with run_id {summary.run_id}"
    log.info("summary%s", again, extra={FIELDS: summary.as_dict()})
    return summary.as_dict()


def _log_metrics(function: str, result: dict[str, Any], started: float) -> None:
    """The invocation's one Embedded Metric Format line."""
    metrics: dict[str, tuple[float, str]] = {k: (result.get(k, 0), "Count") for k in _COUNTS}
    metrics["elapsed"] = (result.get("elapsed_s", round(time.monotonic() - started, 3)), "Seconds")
    fields = emf_metrics(
        METRICS_NAMESPACE, {"function": function}, metrics, timestamp_ms=int(time.time() * 1000)
    )
    log.info("metrics", extra={FIELDS: fields})
