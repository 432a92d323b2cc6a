"""The ``sink`` fixture: each test that takes it runs on every sink the package offers.

In memory (:class:`tmdb_ingest.testing.MemorySink`), in a local folder, and on moto's S3
over HTTP (``slow``: it needs the moto server), so the three keep the same semantics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tmdb_ingest.land.sinks import LocalSink, S3Sink, Sink
from tmdb_ingest.testing import MemorySink


@pytest.fixture(name="sink", params=["memory", "local", pytest.param("s3", marks=pytest.mark.slow)])
async def sink_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sink]:
    """An in-memory sink, a local sink in a temporary folder, or an S3 sink on a fresh
    bucket in moto."""
    if request.param == "memory":
        yield MemorySink()
        return
    if request.param == "local":
        yield LocalSink(tmp_path)
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("bucket")
    async with S3Sink(bucket, endpoint_url=endpoint, region_name="us-east-1") as s3_sink:
        yield s3_sink
