"""The TMDB client over real TCP: one limiter grant is never two requests on the wire."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tmdb_ingest.config.settings import Secret
from tmdb_ingest.fetch.client import ClientPolicy, Outcome, TmdbClient
from tmdb_ingest.fetch.rate import RateLimiter

BODY = orjson.dumps({"id": 11, "imdb_id": "tt0076759", "title": "Star Wars"})


class DroppingServer:
    """Answers the first request on each connection (keep-alive) and drops the second one.

    The second request is read in full and then the connection is closed without an
    answer: what a server does when its idle timeout races with a new request. Counts every
    request it read.
    """

    def __init__(self) -> None:
        self.received = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/3"

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for n in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"GET ")
                self.received += 1
                if n == 1:
                    break  # read, never answered: the connection just closes
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Connection: keep-alive\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.slow
async def test_a_dropped_keep_alive_request_is_retried_through_the_limiter() -> None:
    """aiohttp's silent re-send is off: every request the server read had its own grant."""
    server = DroppingServer()
    async with server as url:
        limiter = RateLimiter(1000)
        policy = ClientPolicy(max_attempts=3, backoff_initial=0.0, backoff_max=0.0)
        client = TmdbClient(url, api_key=Secret("k"), concurrency=1, policy=policy, limiter=limiter)
        async with client:
            first = await client.fetch("tt0076759")
            second = await client.fetch("tt0076759")
    assert first.outcome is Outcome.FETCHED
    assert second.outcome is Outcome.FETCHED
    assert second.attempts == 2  # the dropped request was seen by our retries
    assert server.received == 3
    assert limiter.granted == server.received
