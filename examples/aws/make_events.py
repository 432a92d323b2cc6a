"""Write the events and the environment file ``sam local invoke`` needs for your stack.

    python make_events.py --bucket BUCKET --secret-arn SECRET_ARN

writes, next to this script (or under ``--out``):

- ``events/csv.json``: ``{"csv": "s3://BUCKET/Raw/Local/Catalogue/movies.csv"}``;
- ``events/s3-put.json``: the S3 notification for that object, as S3 sends one;
- ``events/csv-shard.json``: the same CSV, shard ``0/4`` only (shards are 0-based);
- ``env.json``: ``TMDB_SECRET_ID`` for both functions (``sam local invoke --env-vars``),
  since a ``!Ref`` to the stack's secret cannot be resolved outside CloudFormation.

Every event names the CSV under the catalogue prefix, where no trigger is configured:
an object under the input prefix has already started the deployed function, and a local
invocation of the same run would find it held (``busy``) or done. Bucket names are
global, so none is written into the repository: the bucket is yours, from the stack's
``Bucket`` output.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

HERE = Path(__file__).resolve().parent
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # the template's pattern


def events(bucket: str, key: str) -> dict[str, dict[str, Any]]:
    """The events by file name, for the CSV at ``s3://bucket/key``."""
    csv = f"s3://{bucket}/{key}"
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key)},  # S3 sends keys URL-encoded
        },
    }
    return {
        "csv.json": {"csv": csv},
        "s3-put.json": {"Records": [record]},
        "csv-shard.json": {"csv": csv, "shard": "0/4"},
    }


def env_vars(secret_arn: str) -> dict[str, dict[str, str]]:
    """``sam local invoke --env-vars`` content: what the template's ``!Ref`` would give."""
    return {name: {"TMDB_SECRET_ID": secret_arn} for name in ("IngestFunction", "ShardFunction")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", required=True, help="the stack's Bucket output")
    parser.add_argument("--secret-arn", required=True, help="the stack's SecretArn output")
    parser.add_argument(
        "--key",
        default="Raw/Local/Catalogue/movies.csv",
        help="the CSV's key: under the catalogue prefix (no trigger), default %(default)s",
    )
    parser.add_argument("--out", type=Path, default=HERE, help="default: beside this script")
    args = parser.parse_args(argv)
    if not _BUCKET_RE.match(args.bucket):
        parser.error(f"not a valid S3 bucket name: {args.bucket!r}")
    if not args.secret_arn.startswith("arn:"):
        parser.error(f"expected the secret's ARN (arn:...), got {args.secret_arn!r}")
    folder = args.out / "events"
    folder.mkdir(parents=True, exist_ok=True)
    for name, event in events(args.bucket, args.key).items():
        (folder / name).write_text(json.dumps(event, indent=2) + "\n")
        print(folder / name)
    (args.out / "env.json").write_text(json.dumps(env_vars(args.secret_arn), indent=2) + "\n")
    print(args.out / "env.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
