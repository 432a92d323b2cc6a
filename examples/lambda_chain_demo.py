"""The job as a chain of short Lambda invocations that resume each other (``make demo-chain``).

Generates a sample movies.csv, starts the TMDB emulator (about 150 ms median latency,
a limit of 50 requests per second) and moto's S3 server, uploads the CSV under
``input/``, then calls the real handler, ``tmdb_ingest.lambda_handler.handler``, first
with an S3 put notification and then with ``{"csv": ..., "run_id": ...}``, each time with
awslambdaric's ``LambdaContext`` whose deadline is ``--seconds`` away, until the summary
says ``done``. This is what the Step Functions loop in ``examples/aws/`` does. Finally it
prints the objects written and stops everything it started, also on failure.

    python examples/lambda_chain_demo.py [--movies 18000] [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import orjson
from awslambdaric.lambda_context import LambdaContext

from tmdb_ingest.demo import local_services
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.lambda_handler import handler

BUCKET = "tmdb-ingest-chain-demo"
CSV_KEY = "input/movies.csv"
API_KEY = "test-api-key"
MAX_INVOCATIONS = 30


def _environment(s3_url: str, tmdb_url: str) -> None:
    """The function's configuration, as the SAM template sets it (plus local endpoints)."""
    os.environ.update(
        AWS_ENDPOINT_URL_S3=s3_url,
        TMDB_URL=tmdb_url,
        TMDB_API_KEY=API_KEY,
        TMDB_INGEST_RATE="40",
        TMDB_INGEST_CONCURRENCY="20",
    )
    for name in ("TMDB_INGEST_BUCKET", "TMDB_SECRET_ID"):
        os.environ.pop(name, None)


def _chain(seconds: float) -> dict[str, Any]:
    """Invoke the handler until done; print one summary line per invocation."""
    event: dict[str, Any] = {
        "Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": CSV_KEY}}}]
    }
    for n in range(1, MAX_INVOCATIONS + 1):
        deadline_ms = int((time.time() + seconds) * 1000)
        context = LambdaContext(uuid.uuid4().hex, None, None, deadline_ms)
        summary = handler(event, context)
        left = context.get_remaining_time_in_millis() / 1000
        print(f"invocation {n}: {orjson.dumps(summary).decode()}  ({left:.1f} s left)")
        if summary["done"]:
            return summary
        event = {"csv": f"s3://{BUCKET}/{CSV_KEY}", "run_id": summary["run_id"]}
    raise SystemExit(f"not done after {MAX_INVOCATIONS} invocations")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return 0 when every selected movie landed or was reported."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=18_000, help="movies in the sample")
    parser.add_argument("--seconds", type=float, default=15.0, help="time per invocation")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tmdb-chain-demo-") as tmp:
        csv = Path(tmp) / "movies.csv"
        sample = generate_movies_csv(csv, movies=args.movies, seed=7)
        print(f"sample catalogue: {sample.rows} rows, {sample.movies} movies")
        with local_services(seed=7) as (s3_url, emulator):
            _environment(s3_url, emulator.url)
            s3 = boto3.client("s3", endpoint_url=s3_url)
            try:
                s3.create_bucket(Bucket=BUCKET)
                s3.upload_file(str(csv), BUCKET, CSV_KEY)
                print(f"uploaded s3://{BUCKET}/{CSV_KEY}; {args.seconds:g} s per invocation")
                summary = _chain(args.seconds)
                print("objects written:")
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                for page in pages:
                    for item in page.get("Contents", []):
                        print(f"  s3://{BUCKET}/{item['Key']}  {item['Size']:>8} bytes")
            finally:
                s3.close()
    return 0 if summary["done"] else 3


if __name__ == "__main__":
    sys.exit(main())
