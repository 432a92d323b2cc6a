"""The fetch pool and the lander on virtual time: budget marks, flush, exactly once.

Every test here runs on :class:`tests.virtual_clock.VirtualTimeLoop`: a 60 s budget with
150 ms requests and 80 ms uploads runs in milliseconds and lands at exact, repeatable
times, so the budget is checked without sleeps or timing assertions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections import Counter

import orjson

from tests.virtual_clock import run_virtual
from tmdb_ingest.config.settings import Shard
from tmdb_ingest.fetch.client import FetchResult, Outcome, RequestStats
from tmdb_ingest.fetch.pool import fetch_all
from tmdb_ingest.land.lander import Lander
from tmdb_ingest.run.deadline import Deadline
from tmdb_ingest.run.state import RunState
from tmdb_ingest.testing import MemorySink

DAY = dt.date(2026, 12, 1)


def make_ids(n: int) -> list[str]:
    return [f"tt{1_000_000 + k:07d}" for k in range(n)]


class FakeClient:
    """Answers every id after ``latency`` loop seconds; ``stall`` ids never answer."""

    def __init__(
        self, latency: float = 0.15, stall: frozenset[str] = frozenset(), missing: int = 0
    ) -> None:
        self.latency = latency
        self.stall = stall
        self.missing = missing
        self.stats = RequestStats()
        self.started: list[float] = []
        self.returned: list[str] = []

    async def fetch(self, imdb_id: str, *, retry_until: float | None = None) -> FetchResult:
        loop = asyncio.get_running_loop()
        if retry_until is not None and loop.time() >= retry_until:
            return FetchResult(imdb_id, Outcome.UNRESOLVED)
        self.stats.requests += 1
        self.started.append(loop.time())
        await asyncio.sleep(10**6 if imdb_id in self.stall else self.latency)
        self.returned.append(imdb_id)
        if int(imdb_id[2:]) % 10 < self.missing:
            return FetchResult(imdb_id, Outcome.NOT_FOUND, reason="HTTP 404", attempts=1)
        body = orjson.dumps({"imdb_id": imdb_id, "budget": 1})
        return FetchResult(imdb_id, Outcome.FETCHED, body=body, attempts=1)


async def landed(sink: MemorySink) -> Counter[str]:
    """Ids in data files (read from the data files themselves)."""
    ids: Counter[str] = Counter()
    for key, body in sink.objects.items():
        if (
            not key.split("/")[0].startswith("_")
            and "/_state/" not in key
            and key.endswith(".json")
        ):
            ids.update(movie["imdb_id"] for movie in orjson.loads(body))
    return ids


async def run_pool(
    client: FakeClient, ids: list[str], budget: float | None, *, upload_latency: float = 0.08
) -> tuple[MemorySink, Deadline, Lander, float]:
    loop = asyncio.get_running_loop()
    sink = MemorySink(latency=upload_latency)
    state = await RunState.open(sink, prefix="Raw/TMDB/JSON", run_id="r1", shard=Shard(), today=DAY)
    deadline = Deadline(budget, max_request=20.0, max_flush=10.0)
    lander = Lander(state, deadline, batch_size=100, upload_concurrency=4)
    async with lander.uploading():
        await fetch_all(client, ids, workers=20, deadline=deadline, lander=lander)
    await state.save()
    return sink, deadline, lander, loop.time()


def test_a_budget_stops_taking_ids_in_time_and_lands_everything_fetched() -> None:
    """With 60 s for far more ids than fit, the pool stops at its mark and lands every body."""

    async def scenario() -> None:
        client = FakeClient(latency=0.15)
        ids = make_ids(20_000)
        sink, deadline, lander, returned_at = await run_pool(client, ids, 60.0)
        assert deadline.end is not None
        assert returned_at <= deadline.end  # never past the budget
        assert max(client.started) < deadline.stop_taking_at  # type: ignore[operator]
        # reserves measured, not worst cases: the run works until close to its end
        assert deadline.end - max(client.started) < 2.0
        data = await landed(sink)
        assert all(n == 1 for n in data.values())
        assert set(data) == set(client.returned)  # every body TMDB sent landed, once
        assert lander.counts.fetched == len(data) < len(ids)

    run_virtual(scenario())


def test_stalled_requests_are_cancelled_at_the_hard_stop_and_stay_unresolved() -> None:
    """Requests that never answer cannot hold the run past its budget; their ids are not lost."""

    async def scenario() -> None:
        ids = make_ids(400)
        stall = frozenset(ids[::7])
        client = FakeClient(latency=0.15, stall=stall)
        sink, deadline, lander, returned_at = await run_pool(client, ids, 30.0)
        assert returned_at <= deadline.end  # type: ignore[operator]
        data = await landed(sink)
        assert not set(data) & stall
        assert data
        assert set(data) == set(client.returned)
        assert lander.counts.failed == lander.counts.not_found == 0  # stalled: unresolved

    run_virtual(scenario())


def test_without_a_budget_every_id_lands_and_outcomes_are_reported() -> None:
    """No budget: every id ends in a data file or a report chunk, partial batch included."""

    async def scenario() -> None:
        ids = make_ids(1234)
        client = FakeClient(latency=0.15, missing=1)
        sink, _deadline, lander, _ = await run_pool(client, ids, None)
        data = await landed(sink)
        assert sum(data.values()) == len(data) == lander.counts.fetched
        assert lander.counts.fetched + lander.counts.not_found == len(ids)
        assert lander.counts.not_found == sum(1 for i in ids if int(i[2:]) % 10 < 1)
        assert lander.counts.batches == -(-lander.counts.fetched // 100)

    run_virtual(scenario())


def test_a_stop_lands_the_partial_batch_and_returns_within_the_grace() -> None:
    """stop() (a signal) ends taking at once, lets requests finish within grace, flushes."""

    async def scenario() -> None:
        ids = make_ids(5000)
        client = FakeClient(latency=0.15)
        loop = asyncio.get_running_loop()
        sink = MemorySink(latency=0.08)
        state = await RunState.open(sink, prefix="P", run_id="r2", shard=Shard(), today=DAY)
        deadline = Deadline(None)
        lander = Lander(state, deadline, batch_size=100)
        loop.call_at(loop.time() + 5.0, lambda: deadline.stop("SIGTERM", grace=1.0))
        async with lander.uploading():
            await fetch_all(client, ids, workers=20, deadline=deadline, lander=lander)
        assert loop.time() <= deadline.start + 5.0 + 1.0 + 1.0  # grace + the flush
        assert max(client.started) <= deadline.start + 5.0
        data = await landed(sink)
        assert set(data) == set(client.returned)
        assert 0 < lander.counts.fetched < len(ids)
        assert lander.counts.fetched % 100 != 0  # so there is a partial batch to land
        assert lander.counts.batches == -(-lander.counts.fetched // 100)  # and it landed
        assert sum(data.values()) == lander.counts.fetched

    run_virtual(scenario())


class CancelledRightAfterFetch(FakeClient):
    """Each fetch returns its body with a cancellation already requested for the worker.

    The cancellation is delivered at the worker's next suspension point. If the hand-over
    to the lander had one (an ``await`` between the fetch and ``accept``), the body TMDB
    sent would be dropped there, and this client would see more bodies returned than
    accepted.
    """

    async def fetch(self, imdb_id: str, *, retry_until: float | None = None) -> FetchResult:
        result = await super().fetch(imdb_id, retry_until=retry_until)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        return result


def test_a_fetched_body_is_handed_over_with_no_suspension_point() -> None:
    """A cancellation right after a fetch returns never loses the body it returned."""
    assert not inspect.iscoroutinefunction(Lander.accept)

    async def scenario() -> None:
        ids = make_ids(300)
        client = CancelledRightAfterFetch(latency=0.15)
        sink, _deadline, lander, _ = await run_pool(client, ids, None)
        assert len(client.returned) == 20  # each worker fetched once, then was cancelled
        assert lander.counts.seen_fetched == len(client.returned)
        assert set(await landed(sink)) == set(client.returned)

    run_virtual(scenario())


def test_back_pressure_bounds_the_movies_held_while_uploads_are_slow() -> None:
    """With uploads far slower than fetches, requests wait instead of piling up bodies."""

    async def scenario() -> None:
        ids = make_ids(3000)
        client = FakeClient(latency=0.01)
        sink = MemorySink(latency=5.0)
        state = await RunState.open(sink, prefix="P", run_id="r3", shard=Shard(), today=DAY)
        deadline = Deadline(None)
        lander = Lander(state, deadline, batch_size=100, upload_concurrency=2)
        held: list[int] = []

        async def watch() -> None:
            while True:
                held.append(lander.counts.seen_fetched - lander.counts.fetched)
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch())
        async with lander.uploading():
            await fetch_all(client, ids, workers=20, deadline=deadline, lander=lander)
        watcher.cancel()
        assert lander.counts.fetched == len(ids)
        assert max(held) <= 100 * (3 * 2 + 1)

    run_virtual(scenario())
