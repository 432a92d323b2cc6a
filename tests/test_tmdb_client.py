"""Unit tests of the TMDB client against canned answers (aioresponses)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aioresponses import aioresponses as _aioresponses

from tmdb_ingest.config.settings import Settings
from tmdb_ingest.errors import AuthError
from tmdb_ingest.fetch.client import Outcome, TmdbClient
from tmdb_ingest.fetch.rate import RateLimiter

BASE = "https://tmdb.test/3"
KEY = "sk-unit-test-secret-1234"
STAR_WARS = (Path(__file__).parent / "data" / "movie-details.json").read_bytes()
URL = re.compile(r"^https://tmdb\.test/3/movie/tt\d+.*$")


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required `stream_writer` argument."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class aioresponses(_aioresponses):
    """aioresponses with a response class that works on every supported aiohttp."""

    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(*args, **kwargs)


def settings(**changes: object) -> Settings:
    base = Settings(
        tmdb_url=BASE, api_key=KEY, rate=1000, backoff_initial=0.0, backoff_max=0.0, max_attempts=3
    )
    return base.replace(**changes) if changes else base


def error(code: int, message: str = "x") -> bytes:
    return orjson.dumps({"success": False, "status_code": code, "status_message": message})


async def test_a_200_json_object_is_fetched_byte_for_byte() -> None:
    """A 200 with a JSON object body comes back as `fetched` with the exact bytes."""
    with aioresponses() as mock:
        mock.get(URL, status=200, body=STAR_WARS)
        async with TmdbClient.from_settings(settings()) as client:
            result = await client.fetch("tt0076759")
    assert result.outcome is Outcome.FETCHED
    assert result.body == STAR_WARS


async def test_the_key_goes_in_the_query_and_the_token_in_a_bearer_header() -> None:
    """api_key is sent as a query parameter; an access token as Authorization: Bearer."""
    with aioresponses() as mock:
        mock.get(URL, status=200, body=STAR_WARS)
        mock.get(URL, status=200, body=STAR_WARS)
        async with TmdbClient.from_settings(settings()) as client:
            await client.fetch("tt0076759")
        async with TmdbClient.from_settings(
            settings(api_key=None, access_token="tok-123")
        ) as client:
            await client.fetch("tt0076759")
        calls = [call for calls in mock.requests.values() for call in calls]
    assert calls[0].kwargs["params"]["api_key"] == KEY
    assert "Authorization" not in calls[0].kwargs["headers"]
    assert calls[1].kwargs["headers"]["Authorization"] == "Bearer tok-123"
    assert "api_key" not in calls[1].kwargs["params"]


async def test_404_is_not_found_and_final() -> None:
    """A 404 (status_code 34) is `not_found` after one request."""
    with aioresponses() as mock:
        mock.get(URL, status=404, body=error(34))
        async with TmdbClient.from_settings(settings()) as client:
            result = await client.fetch("tt0000001")
            assert client.stats.requests == 1
    assert result.outcome is Outcome.NOT_FOUND
    assert "34" in (result.reason or "")


@pytest.mark.parametrize(("code", "word"), [(7, "invalid"), (10, "suspended")])
async def test_401_raises_auth_error_without_the_key(code: int, word: str) -> None:
    """A 401 stops with AuthError whose message names the cause and not the key."""
    with aioresponses() as mock:
        mock.get(URL, status=401, body=error(code, f"bad key {KEY}"))
        async with TmdbClient.from_settings(settings()) as client:
            with pytest.raises(AuthError) as caught:
                await client.fetch("tt0000001")
    assert word in str(caught.value)
    assert KEY not in str(caught.value)
    assert caught.value.tmdb_status_code == code


async def test_5xx_then_200_is_retried_and_counted() -> None:
    """A 503 then a 200 gives `fetched` after two requests and one retry."""
    with aioresponses() as mock:
        mock.get(URL, status=503, body=error(46))
        mock.get(URL, status=200, body=STAR_WARS)
        async with TmdbClient.from_settings(settings()) as client:
            result = await client.fetch("tt0076759")
            assert client.stats.retries == 1
            assert client.stats.requests == 2
    assert result.outcome is Outcome.FETCHED


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b"<html>oops</html>", "not JSON"),
        (200, b'{"id": 1, "title": "trunc', "not JSON"),
        (200, b"[1, 2]", "not a JSON object"),
        (500, b"<html>Internal</html>", "HTTP 500"),
    ],
)
async def test_bad_answers_are_retried_then_failed_with_the_last_reason(
    status: int, body: bytes, reason: str
) -> None:
    """Invalid bodies and 5xx are retried up to max_attempts, then `failed` with a reason."""
    with aioresponses() as mock:
        for _ in range(3):
            mock.get(URL, status=status, body=body)
        async with TmdbClient.from_settings(settings()) as client:
            result = await client.fetch("tt0076759")
            assert client.stats.requests == 3
    assert result.outcome is Outcome.FAILED
    assert reason in (result.reason or "")
    assert result.body is None


async def test_connection_errors_are_retried() -> None:
    """A reset connection is retried once and then succeeds: two requests, one retry."""
    with aioresponses() as mock:
        mock.get(URL, exception=aiohttp.ServerDisconnectedError())
        mock.get(URL, status=200, body=STAR_WARS)
        async with TmdbClient.from_settings(settings()) as client:
            result = await client.fetch("tt0076759")
            assert client.stats.requests == 2
            assert client.stats.retries == 1
    assert result.outcome is Outcome.FETCHED
    assert result.attempts == 2
    assert sum(len(calls) for calls in mock.requests.values()) == 2


async def test_429_pauses_the_limiter_for_retry_after() -> None:
    """A 429 with Retry-After pauses every worker through the shared limiter, then retries."""
    with aioresponses() as mock:
        mock.get(URL, status=429, body=error(25), headers={"Retry-After": "0.2"})
        mock.get(URL, status=200, body=STAR_WARS)
        async with TmdbClient.from_settings(settings()) as client:
            result = await client.fetch("tt0076759")
            assert client.stats.throttled == 1
            assert client.limiter.paused_s == pytest.approx(0.2, abs=0.05)
    assert result.outcome is Outcome.FETCHED


class _StatedLimitRecorder:
    """A fixed-rate limiter that also takes the limit a 429 states, and keeps the order."""

    def __init__(self) -> None:
        self.inner = RateLimiter(1000)
        self.calls: list[tuple[str, float | None]] = []

    @property
    def rate(self) -> float:
        return self.inner.rate

    async def acquire(self) -> float:
        return await self.inner.acquire()

    def on_answer(self, sent_at: float) -> None:
        self.calls.append(("answer", None))

    def stated_limit(self, limit: float) -> None:
        self.calls.append(("stated", limit))

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        self.calls.append(("throttle", retry_after))


@pytest.mark.parametrize(
    ("body", "stated"),
    [
        (error(25, "Your request count (41) is over the allowed limit of (40)."), 40.0),
        (error(25, "Your request count (13) is over the allowed limit of (12.5)."), 12.5),
        (error(25, "Too many requests."), None),  # code 25 without a limit in it
        (error(7, "over the allowed limit of (40)"), None),  # not code 25
        (b"<html>429 Too Many Requests</html>", None),  # not TMDB's body
    ],
)
async def test_a_429_passes_the_limit_tmdb_states_to_the_limiter(
    body: bytes, stated: float | None
) -> None:
    """TMDB's code-25 body names its limit; the client hands it to a limiter that takes it
    (``stated_limit``), just before ``on_throttle`` for the same 429, and only then."""
    limiter = _StatedLimitRecorder()
    with aioresponses() as mock:
        mock.get(URL, status=429, body=body, headers={"Retry-After": "0"})
        mock.get(URL, status=200, body=STAR_WARS)
        async with TmdbClient.from_settings(settings(), limiter=limiter) as client:
            result = await client.fetch("tt0076759")
    assert result.outcome is Outcome.FETCHED
    expected = [("stated", stated)] if stated is not None else []
    assert limiter.calls == [*expected, ("throttle", 0.0), ("answer", None)]


async def test_a_limiter_without_the_stated_limit_hook_still_gets_the_429() -> None:
    """The hook is optional: today's fixed RateLimiter has none and is paused as before."""
    limiter = RateLimiter(1000)
    assert not hasattr(limiter, "stated_limit")
    with aioresponses() as mock:
        mock.get(
            URL,
            status=429,
            body=error(25, "... allowed limit of (40)."),
            headers={"Retry-After": "0.1"},
        )
        mock.get(URL, status=200, body=STAR_WARS)
        async with TmdbClient.from_settings(settings(), limiter=limiter) as client:
            result = await client.fetch("tt0076759")
    assert result.outcome is Outcome.FETCHED
    assert limiter.paused_s == pytest.approx(0.1, abs=0.05)


async def test_other_4xx_fail_at_once() -> None:
    """A 400 is not worth retrying: `failed` after one request."""
    with aioresponses() as mock:
        mock.get(URL, status=400, body=error(22))
        async with TmdbClient.from_settings(settings()) as client:
            result = await client.fetch("tt0076759")
            assert client.stats.requests == 1
    assert result.outcome is Outcome.FAILED


async def test_a_stop_leaves_the_id_unresolved() -> None:
    """Past its deadline, the id is `unresolved`, not failed, and nothing is sent."""
    with aioresponses():
        async with TmdbClient.from_settings(settings()) as client:
            result = await client.fetch("tt0076759", retry_until=0.0)
            assert client.stats.requests == 0
    assert result.outcome is Outcome.UNRESOLVED


@pytest.mark.parametrize(
    "bad",
    [
        "tt123",
        "nm0000001",
        "tt0076759/../x",
        "tt0076759?a=1",
        "",
        "tt0076759\n",
        "tt\u0660\u0660\u0667\u0666\u0667\u0665\u0669",  # Arabic-Indic digits
    ],
)
async def test_malformed_ids_never_reach_a_url(bad: str) -> None:
    """An id that is not tt + 7-10 digits is refused before any request."""
    async with TmdbClient.from_settings(settings()) as client:
        with pytest.raises(ValueError, match="IMDb"):
            await client.fetch(bad)
        assert client.stats.requests == 0


async def test_a_404_without_tmdbs_body_is_retried_never_not_found() -> None:
    """An HTML 404 (a proxy, a wrong URL) is not TMDB saying "no such movie"."""
    with aioresponses() as mock:
        for _ in range(3):
            mock.get(URL, status=404, body=b"<html>Not Found</html>", content_type="text/html")
        async with TmdbClient.from_settings(settings()) as client:
            result = await client.fetch("tt0076759")
            assert client.stats.requests == 3
            assert client.tmdb_seen is False
    assert result.outcome is Outcome.FAILED
    assert result.reason == "HTTP 404 that is not TMDB's"
