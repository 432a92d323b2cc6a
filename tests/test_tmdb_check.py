"""The run's first request, against canned answers: GET /configuration proves the URL."""

from __future__ import annotations

import random
import re

import aiohttp
import orjson
import pytest

from tests.test_tmdb_client import BASE, KEY, aioresponses, error, settings
from tmdb_ingest.emulator.configuration import configuration_bytes
from tmdb_ingest.errors import AuthError, TmdbUnreachable
from tmdb_ingest.fetch.client import TmdbClient
from tmdb_ingest.fetch.rate import RateLimiter

CONFIGURATION = re.compile(r"^https://tmdb\.test/3/configuration(\?.*)?$")


async def test_a_200_with_images_proves_the_url_with_one_request_through_the_limiter() -> None:
    """TMDB's configuration body: proven, one request, granted by the limiter and counted."""
    limiter = RateLimiter(1000)
    with aioresponses() as mock:
        mock.get(CONFIGURATION, status=200, body=configuration_bytes())
        async with TmdbClient.from_settings(settings(), limiter=limiter) as client:
            assert await client.check() is True
            assert client.stats.requests == 1
            assert client.tmdb_seen is True
        (call,) = [c for calls in mock.requests.values() for c in calls]
    assert limiter.granted == 1
    assert call.kwargs["params"]["api_key"] == KEY  # it proves the key too


@pytest.mark.parametrize(
    ("status", "body", "what"),
    [
        (404, error(34), "404 with TMDB's code 34"),
        (404, b"<html>Not Found</html>", "404 that is not TMDB's"),
        (200, b'{"id": 11, "title": "Star Wars"}', "200 without TMDB's `images`"),
        (200, b"<html>Checking your browser</html>", "200 with a body that is not JSON"),
        (403, b"<html>Forbidden</html>", "403"),
    ],
)
async def test_any_other_answer_is_fatal_at_once_naming_the_url_and_what_answered(
    status: int, body: bytes, what: str
) -> None:
    """A wrong path (TMDB's own 404), a foreign server, a movie body: fatal, one request."""
    with aioresponses() as mock:
        mock.get(CONFIGURATION, status=status, body=body)
        async with TmdbClient.from_settings(settings()) as client:
            with pytest.raises(TmdbUnreachable) as caught:
                await client.check()
            assert client.stats.requests == 1
    message = str(caught.value)
    assert message == f"{what}: not TMDB's v3 API at {BASE} (check --tmdb-url)"
    assert KEY not in message


async def test_a_rejected_key_is_still_auth_error() -> None:
    """401 at /configuration is the key-rejected error, after one request."""
    with aioresponses() as mock:
        mock.get(CONFIGURATION, status=401, body=error(7))
        async with TmdbClient.from_settings(settings()) as client:
            with pytest.raises(AuthError, match="rejected"):
                await client.check()
            assert client.stats.requests == 1


async def test_nothing_answering_is_unreachable_after_three_quick_tries() -> None:
    """Refused connections: TmdbUnreachable naming what to check, within three requests."""
    with aioresponses() as mock:
        for _ in range(3):
            mock.get(CONFIGURATION, exception=aiohttp.ClientConnectionError())
        async with TmdbClient.from_settings(settings(max_attempts=6)) as client:
            with pytest.raises(TmdbUnreachable, match="did not answer") as caught:
                await client.check()
            assert client.stats.requests == 3
    assert "--tmdb-url" in str(caught.value)
    assert KEY not in str(caught.value)


async def test_a_tmdb_5xx_then_the_configuration_is_proven() -> None:
    """A 503 with TMDB's body is an outage, not a wrong URL: tried again, then proven."""
    with aioresponses() as mock:
        mock.get(CONFIGURATION, status=503, body=error(9))
        mock.get(CONFIGURATION, status=429, body=error(25), headers={"Retry-After": "0"})
        mock.get(CONFIGURATION, status=200, body=configuration_bytes())
        async with TmdbClient.from_settings(settings()) as client:
            assert await client.check() is True
            assert (client.stats.requests, client.stats.throttled) == (3, 1)


async def test_tmdb_down_gets_the_policys_attempts_then_is_fatal() -> None:
    """TMDB's own 503s get max_attempts (not the three quick tries), then a fatal line."""
    with aioresponses() as mock:
        for _ in range(5):
            mock.get(CONFIGURATION, status=503, body=error(46))
        async with TmdbClient.from_settings(settings(max_attempts=5)) as client:
            with pytest.raises(TmdbUnreachable, match="kept answering HTTP 503") as caught:
                await client.check()
            assert client.stats.requests == 5
    assert "TMDB's code 46" in str(caught.value)


async def test_past_the_deadline_nothing_is_sent_and_nothing_is_proven() -> None:
    """retry_until already passed: False, no request, no error."""
    with aioresponses():
        async with TmdbClient.from_settings(settings()) as client:
            assert await client.check(retry_until=0.0) is False
            assert client.stats.requests == 0


def test_the_emulators_configuration_is_tmdbs_own_example() -> None:
    """The emulator's body is the example of tmdb-api.json, with `images` an object."""
    body = orjson.loads(configuration_bytes())
    assert isinstance(body["images"], dict)
    assert body["images"]["secure_base_url"] == "https://image.tmdb.org/t/p/"
    assert "budget" in body["change_keys"]


async def test_tmdb_down_stops_within_the_policys_retry_wait() -> None:
    """The backoff budget (max_retry_wait) bounds the check too, not only the attempts."""
    conf = settings(max_attempts=50, backoff_initial=0.01, backoff_max=0.01, max_retry_wait=0.03)
    with aioresponses() as mock:
        for _ in range(50):
            mock.get(CONFIGURATION, status=503, body=error(46))
        async with TmdbClient.from_settings(conf, rng=random.Random(1)) as client:
            with pytest.raises(TmdbUnreachable, match="kept answering HTTP 503"):
                await client.check()
            # Waits of 5 to 10 ms: at most 7 fit in 30 ms, so far fewer than 50 attempts.
            assert 4 <= client.stats.requests <= 8


async def test_a_stop_before_the_check_sends_nothing_and_proves_nothing() -> None:
    """stop_sending() first (a signal, a lost lease): False, no request, no error."""
    with aioresponses():
        async with TmdbClient.from_settings(settings()) as client:
            client.stop_sending()
            assert await client.check() is False
            assert client.stats.requests == 0
