"""Plug in your own storage: a user-defined sink passed to ``ingest(..., sink=...)``.

Any object with the methods of :class:`tmdb_ingest.land.sinks.Sink` (``put``, ``get``,
``get_with_etag``, ``delete``, ``iter_keys``, ``check``, ``uri``) can take the place of
S3; ``put`` and ``delete`` honour the conditions (``if_none_match``, ``if_match``).
This one keeps every object in a dict and counts the bytes written, which is also a
handy fake for your own tests.
The run state (manifests, report) goes through the same sink, so resuming works with it
too, for as long as the dict lives.

Run it against the emulator::

    tmdb-ingest emulate --port 8765 &
    export TMDB_URL=http://127.0.0.1:8765/3 TMDB_API_KEY=test-api-key
    python examples/custom_sink.py movies.csv

It prints the keys written and their sizes, then one JSON object on the last line: the
summary, plus ``objects`` and ``bytes`` counted by the sink and ``movies`` (movies in
its data files).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator

from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.errors import PreconditionFailed
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.selection.reader import select_ids


def _etag(body: bytes) -> str:
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


class MemorySink:
    """A sink that keeps objects in memory and counts what was written."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.bytes_written = 0
        self.puts = 0

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        current = self.objects.get(key)
        if current != body:  # the same bytes again is a retry that already landed: fine
            if if_none_match and current is not None:
                raise PreconditionFailed(f"{key} exists")
            if if_match is not None and (current is None or _etag(current) != if_match):
                raise PreconditionFailed(f"{key} changed")
        self.objects[key] = body
        self.bytes_written += len(body)
        self.puts += 1
        return _etag(body)

    async def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    async def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        body = self.objects.get(key)
        return None if body is None else (body, _etag(body))

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        current = self.objects.get(key)
        if current is not None and if_match is not None and _etag(current) != if_match:
            raise PreconditionFailed(f"{key} changed")
        self.objects.pop(key, None)

    async def iter_keys(self, prefix: str) -> AsyncIterator[str]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield key

    async def check(self) -> None:
        return None  # always there, always writable

    def uri(self, key: str) -> str:
        return f"memory://{key}"


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
