"""One Lambda invocation under awslambdaric's real ``LambdaContext``: how much of its
timeout it uses, and how close to the rate its requests run.

The handler is invoked as the runtime would, with a context whose deadline is
``timeout`` seconds away, on a catalogue far larger than one invocation can fetch; the
TMDB emulator (150 ms median latency) and moto's S3 server each run in their own
process. Figures: the share of the timeout used before the handler returned (target at
least 0.97, never past the deadline) and requests over ``rate x`` the time the handler
ran (target at least 0.97).

``python -m benchmarks.bench_lambda [--timeout 900]``; ``BENCH_LAMBDA_TIMEOUT`` sets the
timeout for ``make bench`` (default 900 s: a real Lambda's longest).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._common import API_KEY, EmulatorProcess, env_int, moto_process

RATE = 40.0
LATENCY_MS = 150.0
BUCKET = "bench-lambda"
CSV_KEY = "Raw/Local/CSV/movies.csv"


def measure(timeout: float, movies: int) -> dict[str, Any]:
    """Invoke the handler once with ``timeout`` seconds; return the figures."""
    import boto3
    from awslambdaric.lambda_context import LambdaContext

    from tmdb_ingest.emulator.sample import generate_movies_csv
    from tmdb_ingest.lambda_handler import handler

    with tempfile.TemporaryDirectory(prefix="bench-lambda-") as tmp:
        csv = Path(tmp) / "movies.csv"
        generate_movies_csv(csv, movies=movies, seed=11)
        emulator_args = ("--latency-ms", f"{LATENCY_MS:g}", "--missing-rate", "0.02")
        with moto_process() as moto_url, EmulatorProcess(*emulator_args) as emulator:
            os.environ.update(
                AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench",  # moto's dummy credentials
                AWS_DEFAULT_REGION="us-east-1",
                AWS_ENDPOINT_URL_S3=moto_url,
                TMDB_URL=emulator.url,
                TMDB_API_KEY=API_KEY,
                TMDB_INGEST_RATE=f"{RATE:g}",
                TMDB_INGEST_CONCURRENCY="20",
                TMDB_INGEST_GENRES="*",
                TMDB_INGEST_VOTES_ABOVE="-1",
            )
            s3 = boto3.client("s3", endpoint_url=moto_url)
            s3.create_bucket(Bucket=BUCKET)
            s3.upload_file(str(csv), BUCKET, CSV_KEY)
            s3.close()
            event = {"csv": f"s3://{BUCKET}/{CSV_KEY}"}
            deadline_ms = int((time.time() + timeout) * 1000)
            context = LambdaContext(uuid.uuid4().hex, None, None, deadline_ms)
            started = time.time()
            summary = handler(event, context)
            elapsed = time.time() - started
            left = context.get_remaining_time_in_millis() / 1000
            served = emulator.stats()
    return {
        "timeout": timeout,
        "elapsed": elapsed,
        "left": left,
        "share": elapsed / timeout,
        "requests": summary["requests"],
        "rate_share": summary["requests"] / (RATE * elapsed),
        "max_in_window": served.get("max_in_window"),
        "summary": summary,
    }


def run(report: list[str], *, timeout: float | None = None) -> None:
    """Measure and append the markdown section to ``report``."""
    timeout = float(timeout or env_int("BENCH_LAMBDA_TIMEOUT", 900))
    movies = int(RATE * timeout * 1.3) + 1000
    print(f"lambda: one invocation with a {timeout:g} s timeout ...", file=sys.stderr)
    r = measure(timeout, movies)
    print(f"lambda: {r}", file=sys.stderr)
    import datetime as dt

    report += [
        "## One Lambda invocation: the timeout used",
        "",
        f"Measured on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by "
        "`python -m benchmarks --only lambda`. "
        f"`tmdb_ingest.lambda_handler.handler` under awslambdaric's `LambdaContext` with a "
        f"{timeout:g} s timeout, rate {RATE:g}, concurrency 20, the emulator at "
        f"{LATENCY_MS:g} ms median latency and moto's S3 server each in their own process, on "
        f"a catalogue of {movies:,} movies (more than one invocation can fetch).",
        "",
        "| figure | measured | target |",
        "|---|---:|---:|",
        f"| returned after | {r['elapsed']:.1f} s | |",
        f"| share of the timeout used | {r['share']:.3f} | >= 0.97 |",
        f"| time left at return | {r['left']:.1f} s | > 0 |",
        f"| requests | {r['requests']:,} | |",
        f"| requests / (rate x time) | {r['rate_share']:.3f} | >= 0.97 |",
        f"| busiest second at the server | {r['max_in_window']} | <= {RATE:g} |",
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=None, help="seconds (default 900)")
    args = parser.parse_args(argv)
    report: list[str] = []
    run(report, timeout=args.timeout)
    print("\n".join(report))


if __name__ == "__main__":
    main()
