"""Fetch the selected movies into a local folder instead of a bucket.

Shows :func:`tmdb_ingest.api.ingest_csv` with ``Settings(out_dir=...)``: the same
layout as in S3 (``Raw/TMDB/JSON/YYYY/MM/DD/*.json``, state under ``_state``), handy for a
first look at the data or for a laptop run. The TMDB endpoint and key come from
``TMDB_URL`` and ``TMDB_API_KEY``; ``TMDB_INGEST_*`` variables tune the run.

Run it against the emulator::

    tmdb-ingest emulate --port 8765 &
    export TMDB_URL=http://127.0.0.1:8765/3 TMDB_API_KEY=test-api-key
    tmdb-ingest sample movies.csv
    python examples/ingest_to_folder.py movies.csv ./raw-zone

It prints each data file with its number of movies, then the summary as one JSON object
on the last line. Running it again resumes the same run and fetches nothing twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from tmdb_ingest.api import ingest_csv
from tmdb_ingest.config.settings import Settings


def data_files(out_dir: Path) -> list[Path]:
    """The data files under ``out_dir`` (everything outside a ``_`` folder)."""
    return sorted(
        path
        for path in out_dir.rglob("*.json")
        if not any(part.startswith("_") for part in path.relative_to(out_dir).parts)
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, list the files; 0 when every id was resolved."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="movies.csv: a path or an s3:// URI")
    parser.add_argument("out_dir", type=Path, help="the folder to write to")
    args = parser.parse_args(argv)

    settings = Settings.from_env(out_dir=args.out_dir)
    summary = asyncio.run(ingest_csv(args.csv, settings))
    for path in data_files(args.out_dir):
        movies = json.loads(path.read_bytes())
        print(f"{path.relative_to(args.out_dir)}: {len(movies)} movies")
    print(json.dumps(summary.as_dict()))
    return 0 if summary.done else 3


if __name__ == "__main__":
    sys.exit(main())
