"""The lease of a run and shard, on moto's S3 (over HTTP) and on the local sink.

Time is the loop's virtual clock in manual mode (tests/virtual_clock.py): renewals, polls
and expiry happen when the test advances it, never by sleeping; the S3 requests in between
are real. Faults are injected by wrapping a real sink (:class:`FaultySink`)
or by the HTTP proxy in front of moto.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
import pytest

from tests.s3proxy import S3FaultProxy
from tests.sink_fixtures import sink_fixture  # noqa: F401 (the `sink` fixture)
from tests.virtual_clock import VirtualTimeLoop, virtual_loop
from tmdb_ingest.config.settings import Shard
from tmdb_ingest.errors import LeaseLost, RunBusy, SinkError
from tmdb_ingest.land.sinks import S3Sink, Sink
from tmdb_ingest.run.layout import LakeLayout
from tmdb_ingest.run.lease import DEFAULT_SKEW, FencedSink, Lease, LeaseRecord

TTL = 30.0
KEY = LakeLayout.of("Raw/TMDB/JSON").lease_key("run-x", Shard(0, 1))
DATA = "Raw/TMDB/JSON/2026/12/01/run-x-0of1-file.json"

pytestmark = pytest.mark.virtual_clock(auto=False)


class FaultySink:
    """A real sink with faults on the lease key: refuse renewals, or land one and then fail.

    ``gate`` (when set) holds every other write until it is opened.
    """

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.refuse_renewals = False
        self.land_then_fail = 0
        self.gate: asyncio.Event | None = None
        self.writes_started: list[str] = []

    async def put(self, key: str, body: bytes, **kwargs: Any) -> str:
        renewal = key == KEY and kwargs.get("if_match") is not None
        if renewal and self.refuse_renewals:
            raise SinkError("injected: S3 is down")
        if key != KEY:
            self.writes_started.append(key)
            if self.gate is not None:
                await self.gate.wait()
        etag = await self.inner.put(key, body, **kwargs)
        if renewal and self.land_then_fail > 0:
            self.land_then_fail -= 1
            raise SinkError("injected: the write landed, the answer was lost")
        return etag

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(key)

    async def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        return await self.inner.get_with_etag(key)

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        await self.inner.delete(key, if_match=if_match)

    def iter_keys(self, prefix: str) -> AsyncIterator[str]:
        return self.inner.iter_keys(prefix)

    async def check(self) -> None:
        await self.inner.check()

    def uri(self, key: str) -> str:
        return self.inner.uri(key)


def hold(
    sink: Sink, clock: VirtualTimeLoop, holder: str, *, wall_offset: float = 0.0
) -> AbstractAsyncContextManager[Lease]:
    """The lease on the loop's virtual clock; its sleeps tell ``clock.advance`` it parked."""
    return Lease(
        sink,
        KEY,
        ttl=TTL,
        run_id="run-x",
        shard="0/1",
        holder=holder,
        clock=clock.time,
        sleep=clock.sleep,
        wall_clock=lambda: clock.clock.wall(wall_offset),
    ).hold()


async def stored(sink: Sink) -> LeaseRecord | None:
    raw = await sink.get(KEY)
    return None if raw is None else LeaseRecord.parse(raw)


async def test_two_acquirers_one_wins_the_other_is_busy(sink: Sink) -> None:
    """Started together: one holds the lease, the other raises RunBusy once it sees a renewal."""
    clock = virtual_loop()
    release = asyncio.Event()
    held: list[str] = []

    async def invocation(name: str) -> None:
        async with hold(sink, clock, name) as lease:
            held.append(name)
            assert lease.epoch == 1
            await release.wait()

    tasks = {name: asyncio.create_task(invocation(name)) for name in ("A", "B")}
    await clock.until_sleeping(2)  # the winner's renewer, the loser's poll
    assert len(held) == 1
    winner = held[0]
    loser = tasks["B" if winner == "A" else "A"]
    start = clock.time()
    while not loser.done() and clock.time() - start < TTL:
        await clock.advance(1)
    assert loser.done()
    with pytest.raises(RunBusy, match=rf"run run-x shard 0/1 is held by {winner} until"):
        await loser
    assert clock.time() - start <= TTL / 2 + 1  # one renewal (ttl/3) plus one poll (ttl/6)
    assert held == [winner]
    record = await stored(sink)
    assert record is not None
    assert record.holder == winner
    assert record.renewal >= 1
    release.set()
    await tasks[winner]
    assert await sink.get(KEY) is None  # released on the way out


async def test_renewals_keep_a_holder_alive_for_many_ttls(sink: Sink) -> None:
    """A holder that can renew stays valid however long it runs; the store shows renewals."""
    clock = virtual_loop()
    async with hold(sink, clock, "A") as lease:
        for _ in range(10):
            await clock.advance(TTL / 2)
            lease.check()
        assert lease.remaining() > TTL / 2
        record = await stored(sink)
        assert record is not None
        assert record.renewal >= 14
        assert record.expires == lease.expires


async def test_lost_renewal_stops_the_holder_before_valid_until(
    sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    """Renewals that keep failing lose the lease at valid_until; nothing is written after."""
    clock = virtual_loop()
    faulty = FaultySink(sink)
    with caplog.at_level(logging.INFO, logger="tmdb_ingest.run.lease"):
        async with hold(faulty, clock, "A") as lease:
            fenced = FencedSink(faulty, lease)
            faulty.refuse_renewals = True
            await clock.advance(TTL / 2)
            faulty.gate = asyncio.Event()  # the next data write hangs in flight
            in_flight = asyncio.create_task(fenced.put(DATA, b"[]", if_none_match=True))
            while DATA not in faulty.writes_started:
                await asyncio.sleep(0)
            faulty.gate, gate = None, faulty.gate
            await clock.advance(TTL / 2 - 1)
            assert not lease.lost.is_set()
            await fenced.put(DATA + ".before", b"[]", if_none_match=True)  # still valid
            await clock.advance(2)
            assert lease.lost.is_set()
            for _ in range(3):
                await asyncio.sleep(0)
            assert in_flight.done()  # cancelled at the loss, not by its own timeout later
            with pytest.raises(LeaseLost, match="lost the lease of run run-x shard 0/1"):
                await in_flight
            gate.set()
            with pytest.raises(LeaseLost):
                await fenced.put(DATA + ".after", b"[]")
            with pytest.raises(LeaseLost):
                lease.check()
    assert await sink.get(DATA + ".before") == b"[]"
    assert await sink.get(DATA) is None
    assert await sink.get(DATA + ".after") is None
    assert "renewing the lease of run run-x shard 0/1 failed" in caplog.text
    assert "lost the lease of run run-x shard 0/1: it could not be renewed" in caplog.text


async def test_stale_lease_is_taken_over_after_expiry(
    sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    """A holder killed without releasing: the next one waits for expiry + skew, then takes over."""
    clock = virtual_loop()
    dead = LeaseRecord(
        run_id="run-x",
        shard="0/1",
        holder="killed/41",
        token="deadbeefdeadbeef",
        epoch=3,
        renewal=7,
        started=clock.clock.wall(-100).isoformat(),
        expires=clock.clock.wall(TTL).isoformat(),
    )
    await sink.put(KEY, dead.to_json(), if_none_match=True)
    acquired = asyncio.Event()

    async def invocation() -> int:
        async with hold(sink, clock, "B") as lease:
            acquired.set()
            return lease.epoch

    with caplog.at_level(logging.INFO, logger="tmdb_ingest.run.lease"):
        task = asyncio.create_task(invocation())
        await clock.until_sleeping(1)
        assert "is held by killed/41 until" in caplog.text
        assert "waiting up to 35 s" in caplog.text
        await clock.advance(TTL + DEFAULT_SKEW - 0.5)
        assert not acquired.is_set()  # expired, but within the skew allowance
        await clock.advance(1)
        assert await task == 4
    assert "took over the lease of run run-x shard 0/1 from killed/41" in caplog.text
    assert "epoch 4" in caplog.text


async def test_takeover_happens_only_after_the_old_holder_fenced_itself(sink: Sink) -> None:
    """A live holder that cannot renew stops before a waiter whose clock runs ahead takes over."""
    clock = virtual_loop()
    faulty = FaultySink(sink)
    async with hold(faulty, clock, "A") as old:
        faulty.refuse_renewals = True
        lost_at: list[float] = []

        async def watch_loss() -> None:
            await old.lost.wait()
            lost_at.append(clock.time())

        watcher = asyncio.create_task(watch_loss())

        async def newcomer() -> float:
            # its wall clock runs ahead by most of the skew allowance
            async with hold(sink, clock, "B", wall_offset=DEFAULT_SKEW - 1) as new:
                assert new.epoch == 2
                return clock.time()

        task = asyncio.create_task(newcomer())
        await clock.until_sleeping(2)
        while not task.done():
            await clock.advance(0.5)
        taken_at = await task
        await watcher
        assert lost_at
        assert lost_at[0] <= taken_at


async def test_ambiguous_renewal_that_landed_is_kept(sink: Sink) -> None:
    """A renewal that landed but reported an error: the retry gets 412, re-reads, and goes on."""
    clock = virtual_loop()
    faulty = FaultySink(sink)
    async with hold(faulty, clock, "A") as lease:
        faulty.land_then_fail = 1
        before = await stored(sink)
        await clock.advance(TTL / 3)  # the renewal lands; its answer is an error
        landed = await stored(sink)
        assert before is not None
        assert landed is not None
        assert landed.renewal == before.renewal + 1
        await clock.advance(TTL / 30)  # the retry: If-Match on the old ETag -> 412
        assert not lease.lost.is_set()
        assert lease.valid_until == pytest.approx(1000 + TTL / 3 + TTL)  # the landed send
        await clock.advance(TTL)
        lease.check()
        after = await stored(sink)
        assert after is not None
        assert after.token == landed.token
        assert after.renewal > landed.renewal + 1


async def test_ambiguous_renewal_over_http(s3_endpoint: str, bucket: str) -> None:
    """On S3 without client retries: the renewal PUT lands, S3 answers 500, the retry gets 412."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    def decide(method: str, path: str, attempt: int) -> str | None:
        # attempt 1 creates the lease; attempt 2 is the first renewal
        return "after" if method == "PUT" and path.endswith(KEY) and attempt == 2 else None

    clock = virtual_loop()
    config = AioConfig(retries={"mode": "standard", "total_max_attempts": 1})
    async with (
        S3FaultProxy(s3_endpoint, decide) as proxy,
        get_session().create_client(
            "s3", endpoint_url=proxy.url, region_name="us-east-1", config=config
        ) as client,
    ):
        sink = S3Sink(bucket, client=client, attempts=1)
        async with hold(sink, clock, "A") as lease:
            await clock.advance(TTL / 3 + TTL / 30)
            assert proxy.injected["after"] == 1
            assert proxy.attempts["PUT", f"/{bucket}/{KEY}"] == 3
            assert not lease.lost.is_set()
            assert lease.valid_until == pytest.approx(1000 + TTL / 3 + TTL)
        assert await sink.get(KEY) is None  # released with the ETag it re-read


async def test_taken_over_holder_is_refused_and_does_not_release(sink: Sink) -> None:
    """Once another invocation replaced the lease, the old holder's renewal loses and stops."""
    clock = virtual_loop()
    async with hold(sink, clock, "A") as lease:
        fenced = FencedSink(sink, lease)
        found = await sink.get_with_etag(KEY)
        assert found is not None
        mine = LeaseRecord.parse(found[0])
        assert mine is not None
        other = LeaseRecord(**{**orjson.loads(mine.to_json()), "holder": "B", "token": "b" * 16})
        await sink.put(KEY, other.to_json(), if_match=found[1])
        await clock.advance(TTL / 3)
        assert lease.lost.is_set()
        with pytest.raises(LeaseLost, match="another invocation took it over"):
            await fenced.put(DATA, b"[]")
    assert await sink.get(DATA) is None
    assert await stored(sink) == other  # not deleted by the old holder


async def test_release_on_error_frees_the_run_at_once(sink: Sink) -> None:
    """A body that raises still releases: the next invocation acquires without waiting."""
    clock = virtual_loop()
    with pytest.raises(ZeroDivisionError):
        async with hold(sink, clock, "A"):
            _ = 1 / 0
    assert await sink.get(KEY) is None
    async with hold(sink, clock, "B") as lease:
        assert lease.epoch == 1
        record = await stored(sink)
        assert record is not None
        assert record.holder == "B"
