"""Select movies from movies.csv, then fetch them from TMDB into an S3 bucket.

Shows the two steps of the job as library calls: :func:`tmdb_ingest.selection.reader.select_ids`
(the ids, from a path or an ``s3://`` URI) and :func:`tmdb_ingest.api.ingest` (TMDB
-> 100-movie JSON files under ``Raw/TMDB/JSON/YYYY/MM/DD/`` in the bucket). Settings
come from the environment, as in the Lambda: ``TMDB_API_KEY`` (or ``TMDB_ACCESS_TOKEN``),
``TMDB_URL``, ``AWS_ENDPOINT_URL_S3`` and the ``TMDB_INGEST_*`` variables.

Run it against the emulator and a local S3 (moto's server, from ``pip install -e
'.[demo]'``; it accepts any credentials, but boto3 needs some to sign with)::

    tmdb-ingest emulate --port 8765 &
    moto_server -p 5050 &
    export TMDB_URL=http://127.0.0.1:8765/3 TMDB_API_KEY=test-api-key
    export AWS_ENDPOINT_URL_S3=http://127.0.0.1:5050
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
    python -c "import boto3; boto3.client('s3').create_bucket(Bucket='my-raw-zone')"
    tmdb-ingest sample movies.csv
    python examples/select_and_ingest_s3.py movies.csv --bucket my-raw-zone

It prints what it selected, then the summary as one JSON object on the last line (exit
0 when done, 3 when not; 1 with a one-line reason when the bucket cannot be used).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.errors import TmdbIngestError
from tmdb_ingest.selection.reader import select_ids


async def select_and_ingest(csv: str, bucket: str) -> dict[str, object]:
    """Select the ids from ``csv`` and land their TMDB details in ``bucket``."""
    settings = Settings.from_env(bucket=bucket)
    selection = select_ids(
        csv,
        genres=settings.genres,
        votes_above=settings.votes_above,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    print(
        f"selected {len(selection.ids)} ids from {selection.rows} rows "
        f"({', '.join(settings.genres)}; more than {settings.votes_above} votes)"
    )
    summary = await ingest(selection.ids, settings)
    return summary.as_dict()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the summary; 0 when every id was resolved."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="movies.csv: a path or an s3:// URI")
    parser.add_argument("--bucket", required=True, help="where the JSON files land")
    args = parser.parse_args(argv)
    try:
        summary = asyncio.run(select_and_ingest(args.csv, args.bucket))
    except TmdbIngestError as exc:  # every error the library raises: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0 if summary["done"] else 3


if __name__ == "__main__":
    sys.exit(main())
