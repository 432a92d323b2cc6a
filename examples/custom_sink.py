"""Plug in your own storage: any sink passed to ``ingest(..., sink=...)``, here one in memory.

Any object with the methods of :class:`tmdb_ingest.land.sinks.Sink` (``put``, ``get``,
``get_with_etag``, ``delete``, ``iter_keys``, ``check``, ``uri``) can take the place of
S3; ``put`` and ``delete`` honour the conditions (``if_none_match``, ``if_match``).
This one is :class:`tmdb_ingest.testing.MemorySink`, the package's in-memory sink for
tests: it keeps every object in a dict and counts the bytes written; its source (one
short class) is a template for a sink of your own.
The run state (manifests, report) goes through the same sink, so resuming works with it
too, for as long as the dict lives.

Run it against the emulator::

    tmdb-ingest emulate --port 8765 &
    export TMDB_URL=http://127.0.0.1:8765/3 TMDB_API_KEY=test-api-key
    tmdb-ingest sample movies.csv
    python examples/custom_sink.py movies.csv

It prints the keys written and their sizes, then one JSON object on the last line: the
summary, plus ``objects`` and ``bytes`` counted by the sink and ``movies`` (movies in
its data files).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.selection.reader import select_ids
from tmdb_ingest.testing import MemorySink


async def run(csv: str) -> dict[str, object]:
    """Select from ``csv``, ingest into a :class:`MemorySink`; return what happened."""
    settings = Settings.from_env()  # no bucket, no out_dir: the sink is ours
    selection = select_ids(csv, genres=settings.genres, votes_above=settings.votes_above)
    sink = MemorySink()
    assert isinstance(sink, Sink)  # the protocol is runtime-checkable
    summary = await ingest(selection.ids, settings, sink=sink)
    data_keys = [key for key in sink.objects if "/_" not in key]
    movies = sum(len(json.loads(sink.objects[key])) for key in data_keys)
    for key in sorted(sink.objects):
        print(f"{sink.uri(key)}  {len(sink.objects[key])} bytes")
    return {
        **summary.as_dict(),
        "objects": len(sink.objects),
        "data_files": len(data_keys),
        "bytes": sink.bytes_written,
        "movies": movies,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the result; 0 when every id was resolved."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="movies.csv: a path or an s3:// URI")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.csv))
    print(json.dumps(result))
    return 0 if result["done"] else 3


if __name__ == "__main__":
    sys.exit(main())
