"""tmdb_ingest.testing, as a user's tests would use it: the memory sink and a local TMDB.

The memory sink's conditional writes are checked against S3's (moto) and the local sink's
by the shared ``sink`` fixture (tests/sink_fixtures.py); here: a whole run into it, and
the emulator's context manager.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.error
import urllib.request

import orjson
import pytest

from tests.helpers import ids
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.testing import MemorySink, local_tmdb


def test_memory_sink_is_a_sink() -> None:
    """The protocol is runtime-checkable, and the memory sink satisfies it."""
    assert isinstance(MemorySink(), Sink)


@pytest.mark.slow
def test_local_tmdb_serves_a_run_into_the_memory_sink() -> None:
    """A run against local_tmdb's URL and key lands every found movie in the memory sink."""
    selected = ids(30)
    with local_tmdb(missing_rate=0.0) as tmdb:
        assert tmdb.api_key == "test-api-key"
        settings = Settings(tmdb_url=tmdb.url, api_key=tmdb.api_key, rate=1000)
        sink = MemorySink()
        summary = asyncio.run(ingest(selected, settings, sink=sink, today=dt.date(2026, 12, 1)))
        assert tmdb.stats.requests == 1 + len(selected)  # GET /configuration, then each movie
    assert summary.done
    assert summary.fetched == len(selected)
    data = [key for key in sink.objects if "/_" not in key]
    assert data
    assert all(key.startswith("Raw/TMDB/JSON/2026/12/01/") for key in data)
    landed = sorted(m["imdb_id"] for key in data for m in orjson.loads(sink.objects[key]))
    assert landed == sorted(selected)
    assert sink.puts >= len(sink.objects)
    assert sink.bytes_written >= sum(len(body) for body in sink.objects.values())


@pytest.mark.slow
def test_local_tmdb_stops_on_exit_also_when_the_block_raises() -> None:
    """After the block (even one that raised) the port no longer answers."""
    urls: list[str] = []

    def block() -> None:
        with local_tmdb(missing_rate=0.0) as tmdb:
            urls.append(f"{tmdb.url}/movie/tt0076759?api_key={tmdb.api_key}")
            with urllib.request.urlopen(urls[0], timeout=10) as answer:  # noqa: S310 (ours)
                assert answer.status == 200
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        block()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(urls[0], timeout=10)  # noqa: S310
