"""AWS Lambda entry point: event + context -> settings -> :func:`ingest_csv` -> summary.

The event is an S3 put notification for the uploaded CSV, or ``{"csv": "s3://...",
"run_id": ..., "shard": "I/N"}`` (``run_id`` and ``shard`` optional). Settings come from
the environment (see ``docs/deployment.md``); the output bucket defaults to the CSV's.
The return value is the summary dict; ``done: false`` means "invoke again with the same
``run_id``" (without one, the library derives it from the inputs and the date, and the
summary carries it).

Time: the run's budget is the invocation's remaining time less a safety margin of 10%,
at least 5 s and at most 30 s. The library already keeps back time to finish requests
in flight and flush its state *within* the budget; the margin covers what lies outside
it: closing the event loop and clients, returning the response, and clock skew between
Lambda's deadline and this process.

Errors: a bad event, setting or CSV raises ``InputError`` / ``ConfigError`` (nothing was
fetched). A fatal run-time error (key rejected, bucket missing or denied) raises
:class:`IngestFailed` with a one-line message holding the reason and the summary so far,
so that a Step Functions ``Catch`` on ``IngestFailed`` can route it, distinct from
Lambda's own errors and timeouts, which are worth retrying. Everything is created
inside each invocation's ``asyncio.run``, so a warm container can be invoked again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any
from urllib.parse import unquote_plus

import orjson

from tmdb_ingest.credentials import credentials_from_env
from tmdb_ingest.errors import ConfigError, FatalError, IngestFailed, InputError
from tmdb_ingest.logs import configure_logging, redact
from tmdb_ingest.pipeline import ingest_csv
from tmdb_ingest.settings import Settings, Shard
from tmdb_ingest.summary import Summary

__all__ = ["IngestFailed", "handler", "parse_event", "safety_margin"]

log = logging.getLogger("tmdb_ingest")


def safety_margin(remaining_s: float) -> float:
    """Seconds kept back from the invocation's remaining time: 10%, within 5..30 s."""
    return min(30.0, max(5.0, 0.1 * remaining_s))


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
        return f"s3://{bucket}/{key}", None, None
    if not isinstance(event, dict) or not isinstance(event.get("csv"), str):
        shown = sorted(event) if isinstance(event, dict) else type(event).__name__
        raise InputError(
            'event: expected an S3 notification or {"csv": "s3://bucket/key", '
            f'"run_id": ..., "shard": "I/N"}}, got {shown}'
        )
    csv = event["csv"]
    if not csv.startswith("s3://") or "/" not in csv[5:].strip("/"):
        raise InputError(f"event: csv must be an s3://bucket/key URI, got {csv!r}")
    run_id, shard = event.get("run_id"), event.get("shard")
    if run_id is not None and not isinstance(run_id, str):
        raise ConfigError("run_id", f"must be a string, got {run_id!r}")
    if shard is not None and not isinstance(shard, str):
        raise ConfigError("shard", f'must be a string such as "0/4", got {shard!r}')
    return csv, run_id or None, Shard.parse(shard) if shard else None


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run (or resume) one invocation's share of the job; return the summary dict."""
    started = time.monotonic()
    remaining = context.get_remaining_time_in_millis() / 1000
    configure_logging(json=True)
    csv, run_id, shard = parse_event(event)
    budget = remaining - safety_margin(remaining)
    if budget < 1.0:
        raise ConfigError("time_budget", f"only {remaining:.1f} s left: raise the timeout")
    request_id = getattr(context, "aws_request_id", None)
    log.info(
        "invocation %s: %s, run %s, shard %s, budget %.1f s",
        *(request_id, csv, run_id or "(derived)", shard or "0/1", budget),
    )
    summary = asyncio.run(_invoke(csv, run_id, shard, budget, started))
    if not summary.done:
        log.info("not done: invoke again with run_id %s", summary.run_id)
    return summary.as_dict()


async def _invoke(
    csv: str, run_id: str | None, shard: Shard | None, budget: float, started: float
) -> Summary:
    env = os.environ
    overrides: dict[str, Any] = {"time_budget": budget, **await credentials_from_env(env)}
    if run_id:
        overrides["run_id"] = run_id
    if shard:
        overrides["shard"] = shard
    if not env.get("TMDB_INGEST_BUCKET"):
        overrides["bucket"] = csv[5:].split("/", 1)[0]
    settings = Settings.from_env(env, **overrides)
    configure_logging(settings.secrets(), json=True)
    try:
        return await ingest_csv(csv, settings, started_at=started)
    except FatalError as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc.summary, Summary):
            message += f"; summary so far: {orjson.dumps(exc.summary.as_dict()).decode()}"
        message = redact(message, settings.secrets())  # a second line of defence
        log.error("fatal: %s", message)
        raise IngestFailed(message) from None
