"""Conditional writes on both sinks: create-if-absent, replace-if-unchanged, delete-if-unchanged.

S3 is moto's server over HTTP (it enforces If-None-Match and If-Match on PutObject and
If-Match on DeleteObject); the local sink emulates the same semantics with O_EXCL-style
hard links and an flock'd compare-and-swap.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from tests.s3proxy import S3FaultProxy
from tests.sink_fixtures import sink_fixture  # noqa: F401 (the `sink` fixture)
from tmdb_ingest.config.settings import Shard
from tmdb_ingest.errors import PreconditionFailed, SinkError
from tmdb_ingest.land.sinks import LocalSink, S3Sink, Sink, same_etag
from tmdb_ingest.run.state import RunState

KEY = "Raw/TMDB/_state/run-x/shard-0-of-1/lease.json"


async def test_create_if_absent_refuses_other_bytes(sink: Sink) -> None:
    """If-None-Match: the first write creates the key; a different second one is refused."""
    etag = await sink.put(KEY, b'{"a":1}', if_none_match=True)
    with pytest.raises(PreconditionFailed, match="exists"):
        await sink.put(KEY, b'{"a":2}', if_none_match=True)
    assert await sink.get_with_etag(KEY) == (b'{"a":1}', etag)


async def test_create_if_absent_accepts_its_own_bytes_again(sink: Sink) -> None:
    """A retried create that meets exactly its own bytes is the first attempt that landed."""
    first = await sink.put(KEY, b'{"a":1}', if_none_match=True)
    again = await sink.put(KEY, b'{"a":1}', if_none_match=True)
    assert same_etag(first, again)


async def test_replace_if_unchanged(sink: Sink) -> None:
    """If-Match: replacing works with the current ETag and fails with an older one."""
    old = await sink.put(KEY, b"v1", if_none_match=True)
    new = await sink.put(KEY, b"v2", if_match=old)
    assert not same_etag(old, new)
    with pytest.raises(PreconditionFailed, match="changed"):
        await sink.put(KEY, b"v3", if_match=old)
    found = await sink.get_with_etag(KEY)
    assert found is not None
    assert found[0] == b"v2"
    assert same_etag(found[1], new)


async def test_replace_of_a_missing_key_fails(sink: Sink) -> None:
    """If-Match on a key that does not exist (any more) is a lost condition."""
    etag = await sink.put(KEY, b"v1")
    await sink.delete(KEY)
    with pytest.raises(PreconditionFailed):
        await sink.put(KEY, b"v2", if_match=etag)
    assert await sink.get(KEY) is None


async def test_delete_if_unchanged(sink: Sink) -> None:
    """A conditional delete removes only the version it names; a missing key is fine."""
    old = await sink.put(KEY, b"v1")
    new = await sink.put(KEY, b"v2", if_match=old)
    with pytest.raises(PreconditionFailed):
        await sink.delete(KEY, if_match=old)
    assert await sink.get(KEY) == b"v2"
    await sink.delete(KEY, if_match=new)
    assert await sink.get_with_etag(KEY) is None
    await sink.delete(KEY, if_match=new)  # already gone: not an error


async def test_plain_put_returns_the_etag_get_sees(sink: Sink) -> None:
    """An unconditional put overwrites and returns the ETag a later read reports."""
    await sink.put(KEY, b"v1")
    etag = await sink.put(KEY, b"v2")
    found = await sink.get_with_etag(KEY)
    assert found is not None
    assert found[0] == b"v2"
    assert same_etag(found[1], etag)
    assert [k async for k in sink.iter_keys("Raw/")] == [KEY]  # no lock or temp files


async def test_conditions_are_exclusive_arguments(sink: Sink) -> None:
    """Asking for both conditions at once is a programming error, not a sink error."""
    with pytest.raises(ValueError, match="not both"):
        await sink.put(KEY, b"v", if_none_match=True, if_match='"x"')


async def test_run_state_never_overwrites_a_data_file(sink: Sink) -> None:
    """Manifests and data files are created If-None-Match: another writer's file is kept."""
    state = await RunState.open(
        sink, prefix="Raw/TMDB/JSON", run_id="run-x", shard=Shard(), today=dt.date(2026, 12, 1)
    )
    key = await state.write_batch("b-00001", ["tt0000001"], b'[{"id":1}]')
    assert await state.write_batch("b-00001", ["tt0000001"], b'[{"id":1}]') == key
    with pytest.raises(PreconditionFailed):
        await state.write_batch("b-00001", ["tt0000002"], b'[{"id":2}]')
    assert await sink.get(key) == b'[{"id":1}]'


async def test_local_compare_and_swap_has_one_winner(tmp_path: Path) -> None:
    """Many threads replacing the same version at once: exactly one succeeds."""
    sink = LocalSink(tmp_path)
    etag = await sink.put(KEY, b"v0")

    async def attempt(i: int) -> str | None:
        try:
            return await sink.put(KEY, f"v{i + 1}".encode(), if_match=etag)
        except PreconditionFailed:
            return None

    results = await asyncio.gather(*(attempt(i) for i in range(16)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    found = await sink.get_with_etag(KEY)
    assert found is not None
    assert same_etag(found[1], winners[0])


async def test_local_create_has_one_winner(tmp_path: Path) -> None:
    """Many threads creating the same key with different bytes: exactly one succeeds."""
    sink = LocalSink(tmp_path)

    async def attempt(i: int) -> bool:
        try:
            await sink.put(KEY, f"v{i}".encode(), if_none_match=True)
        except PreconditionFailed:
            return False
        return True

    assert sum(await asyncio.gather(*(attempt(i) for i in range(16)))) == 1


async def test_s3_retried_create_that_had_landed_succeeds(s3_endpoint: str, bucket: str) -> None:
    """A create answered 500 after it landed is retried, meets 412, and still succeeds."""

    def decide(method: str, path: str, attempt: int) -> str | None:
        return "after" if method == "PUT" and path.endswith(KEY) and attempt == 1 else None

    async with (
        S3FaultProxy(s3_endpoint, decide) as proxy,
        S3Sink(bucket, endpoint_url=proxy.url, region_name="us-east-1") as sink,
    ):
        etag = await sink.put(KEY, b"ours", if_none_match=True)
    assert proxy.injected["after"] == 1
    assert proxy.attempts["PUT", f"/{bucket}/{KEY}"] == 2  # the retry met our own object
    async with S3Sink(bucket, endpoint_url=s3_endpoint, region_name="us-east-1") as direct:
        assert await direct.get_with_etag(KEY) == (b"ours", etag)


async def test_s3_retried_create_that_meets_another_object_fails(
    s3_endpoint: str, bucket: str
) -> None:
    """A create retried after a 503 that meets another writer's bytes is a real conflict."""

    def decide(method: str, path: str, attempt: int) -> str | None:
        if method == "PUT" and path.endswith(KEY) and attempt == 1:
            return "slowdown"  # not forwarded: the retry is the first PUT that arrives
        return None

    async with (
        S3FaultProxy(s3_endpoint, decide) as proxy,
        S3Sink(bucket, endpoint_url=proxy.url, region_name="us-east-1") as sink,
        S3Sink(bucket, endpoint_url=s3_endpoint, region_name="us-east-1") as direct,
    ):
        theirs = await direct.put(KEY, b"theirs", if_none_match=True)
        with pytest.raises(PreconditionFailed):
            await sink.put(KEY, b"ours", if_none_match=True)
        assert proxy.injected["slowdown"] == 1
        assert await direct.get_with_etag(KEY) == (b"theirs", theirs)


async def test_local_errors_are_sink_errors(tmp_path: Path) -> None:
    """A folder that cannot be written is a SinkError naming the path."""
    blocker = tmp_path / "Raw"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(SinkError, match="cannot write"):
        await LocalSink(tmp_path).put(KEY, b"v", if_none_match=True)
