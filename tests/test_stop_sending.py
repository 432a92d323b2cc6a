"""A stop (Ctrl-C, SIGTERM, a lost lease) sends nothing new: workers waiting for a rate slot
give up, only requests already sent finish; the log names what stopped the run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from tests.helpers import ids
from tests.virtual_clock import run_virtual
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Secret, Settings
from tmdb_ingest.config.values import Rate
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.fetch.client import TmdbClient
from tmdb_ingest.fetch.outcomes import Outcome
from tmdb_ingest.fetch.rate.limiter import Limiter, make_limiter
from tmdb_ingest.run.stopping import StopRequest
from tmdb_ingest.testing import MemorySink


class RecordingLimiter:
    """A limiter that notes when (on its clock) it granted each slot."""

    def __init__(self, inner: Limiter, clock: Callable[[], float]) -> None:
        self.inner = inner
        self.clock = clock
        self.grants: list[float] = []

    @property
    def rate(self) -> float:
        return self.inner.rate

    async def acquire(self) -> float:
        granted = await self.inner.acquire()
        self.grants.append(self.clock())
        return granted

    def on_answer(self, sent_at: float) -> None:
        self.inner.on_answer(sent_at)

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        self.inner.on_throttle(sent_at, retry_after)


class _Response:
    status = 200

    def __init__(self, url: str) -> None:
        self.headers: dict[str, str] = {}
        last = url.rsplit("/", 1)[-1]
        # The run's first request proves the URL: TMDB's configuration has `images`.
        body = {"images": {}} if last == "configuration" else {"id": 1, "imdb_id": last}
        self._body = orjson.dumps(body)

    async def read(self) -> bytes:
        return self._body


class StubSession:
    """Stands in for aiohttp's session on virtual time: answers 200 after ``latency``."""

    def __init__(self, latency: float, stall: frozenset[str] = frozenset()) -> None:
        self.latency = latency
        self.stall = stall  # ids whose request never answers
        self.sent: list[float] = []

    @contextlib.asynccontextmanager
    async def get(self, url: str, **_: Any) -> AsyncIterator[_Response]:
        self.sent.append(asyncio.get_running_loop().time())
        await asyncio.sleep(10**6 if url.rsplit("/", 1)[-1] in self.stall else self.latency)
        yield _Response(url)


def test_stop_sending_makes_waiters_for_a_slot_give_up_at_once() -> None:
    """Ten fetches at 2/s: stop_sending() at +2.1 s ends the ones still waiting for a slot
    then (unresolved, never sent); the ones sent before it finish."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        session = StubSession(latency=0.3)
        limiter = RecordingLimiter(make_limiter(Rate.fixed(2.0), clock=loop.time), loop.time)
        client = TmdbClient(
            "http://tmdb.invalid/3",
            api_key=Secret("k"),
            limiter=limiter,
            session=session,  # type: ignore[arg-type]
        )
        start = loop.time()
        tasks = [asyncio.ensure_future(client.fetch(i)) for i in ids(10)]
        await asyncio.sleep(2.1)
        stopped_at = loop.time()
        client.stop_sending()
        results = await asyncio.gather(*tasks)
        ended = loop.time()
        assert max(session.sent) <= stopped_at
        assert len(session.sent) == 5  # slots at +0, 0.5, 1, 1.5, 2
        assert [r.outcome for r in results].count(Outcome.FETCHED) == 5
        assert [r.outcome for r in results].count(Outcome.UNRESOLVED) == 5
        assert ended - stopped_at <= 0.3  # the last one sent, at +2.0, answers at +2.3
        assert ended - start < 2.5
        later = await client.fetch("tt9999999")
        assert later.outcome is Outcome.UNRESOLVED
        assert len(session.sent) == 5

    run_virtual(scenario())


def test_a_stop_during_a_run_sends_nothing_new_and_the_log_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ingest() at 2/s on virtual time, SIGINT asked at +3.2 s: no slot is granted after
    it; the requests in flight finish, but one that hangs is cancelled after the in-flight
    reserve, and the log names SIGINT for it, not a time budget."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        session = StubSession(latency=0.3, stall=frozenset(ids(200)[2:3]))
        limiter = RecordingLimiter(make_limiter(Rate.fixed(2.0), clock=loop.time), loop.time)
        stop = StopRequest()
        asked: list[float] = []

        def ask() -> None:
            asked.append(loop.time())
            stop.request("SIGINT")

        loop.call_later(3.2, ask)
        settings = Settings(api_key="k", rate=2, concurrency=20, batch_size=10)
        with caplog.at_level(logging.INFO, logger="tmdb_ingest"):
            summary = await ingest(
                ids(200),
                settings,
                sink=MemorySink(),
                session=session,  # type: ignore[arg-type]
                limiter=limiter,
                stop=stop,
            )
        assert not summary.done
        assert max(limiter.grants) <= asked[0]
        assert max(session.sent) <= asked[0]
        assert summary.requests == len(session.sent) == len(limiter.grants)
        # all but the first request (GET /configuration) and the hung one landed
        assert summary.fetched == len(session.sent) - 2
        # the hung one is cancelled after the in-flight reserve (which the pool measures
        # from a worker's start, slot wait included: here about 4 s), not its own timeout
        assert loop.time() - asked[0] < 5.0

    run_virtual(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert "SIGINT: requests still in flight were cancelled; the next run redoes them" in messages
    assert not any("time budget" in m for m in messages)


@pytest.mark.slow
async def test_after_a_stop_the_emulator_sees_no_request_beyond_those_in_flight() -> None:
    """Over TCP (the emulator in a thread, 50 ms a request): stop at +1.5 s into a run at
    20/s; every request the emulator ever received had been granted before the stop."""
    loop = asyncio.get_running_loop()
    with EmulatorThread(EmulatorConfig(latency_ms=50)) as emu:
        limiter = RecordingLimiter(make_limiter(Rate.fixed(20.0)), time.monotonic)
        stop = StopRequest()
        asked: list[float] = []

        def ask() -> None:
            asked.append(time.monotonic())
            stop.request("SIGTERM")

        settings = Settings(api_key="test-api-key", tmdb_url=emu.url, rate=20, batch_size=10)
        loop.call_later(1.5, ask)
        summary = await ingest(ids(300), settings, sink=MemorySink(), limiter=limiter, stop=stop)
        received = emu.stats.requests
    assert not summary.done
    assert limiter.grants
    assert max(limiter.grants) <= asked[0]  # nothing granted after the stop
    assert received == len(limiter.grants) == summary.requests  # in flight finished, no more
