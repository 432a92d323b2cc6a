"""The TMDB client: authentication, one request per movie, and the outcome of each.

One :class:`TmdbClient` per run holds one ``aiohttp.ClientSession`` (injectable for
tests). :meth:`TmdbClient.fetch` asks for one movie, retrying with tenacity, and returns a
:class:`FetchResult`: ``fetched`` (a 200 whose body is a JSON object, kept byte for
byte), ``not_found`` (404, final) or ``failed`` (the attempts or the retry time ran out;
the last reason is kept). A 401 raises :class:`~tmdb_ingest.errors.AuthError`, which stops
the run. A stop asked for by the caller (time budget) ends the retries early and leaves
the id *unresolved*, never ``failed``.

Secrets: the key is sent as the ``api_key`` query parameter, the token as a Bearer header;
neither appears in a reason, an exception message or a log line (reasons are built from
status codes and exception type names only, never from URLs).
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson
from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception_type

from tmdb_ingest.errors import AuthError, ConfigError
from tmdb_ingest.ids import is_imdb_id
from tmdb_ingest.ratelimit import RateLimiter
from tmdb_ingest.settings import Settings

__all__ = ["FetchResult", "Outcome", "RequestStats", "TmdbClient"]

_AUTH_MESSAGES = {
    7: "TMDB rejected the API key or token (status_code 7: invalid key)",
    10: "TMDB rejected the API key (status_code 10: suspended key)",
}


class Outcome(enum.StrEnum):
    """What became of one id."""

    FETCHED = "fetched"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    UNRESOLVED = "unresolved"  # stopped (time budget, fatal error) before an answer


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The result of asking TMDB for one id; ``body`` is the raw 200 body."""

    imdb_id: str
    outcome: Outcome
    body: bytes | None = None
    reason: str | None = None
    attempts: int = 0


@dataclass(slots=True)
class RequestStats:
    """Counters over all requests of one client."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


MAX_THROTTLED = 30


@dataclass(slots=True)
class _Tally:
    """Attempts of one fetch, by kind, and the backoff slept so far."""

    attempts: int = 0
    errors: int = 0
    throttles: int = 0
    waited: float = 0.0

    @staticmethod
    def throttled_last(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return isinstance(exc, _Retryable) and exc.throttled


class _Retryable(Exception):
    """An answer worth trying again (429, 5xx, timeout, reset, bad body)."""

    def __init__(self, reason: str, *, throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.throttled = throttled  # a 429: the limiter, not the backoff, does the waiting


class _Final(Exception):
    """An answer not worth trying again that is not a 404 (e.g. 400, 403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Stopped(Exception):
    """The caller asked to stop; the id stays unresolved."""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from TMDB; fall back to backoff
    return min(max(seconds, 0.0), 120.0)


def _tmdb_code(body: bytes) -> int | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    code = data.get("status_code") if isinstance(data, dict) else None
    return code if isinstance(code, int) else None


class TmdbClient:
    """Fetches movie details from TMDB, one id per request, within the run's limits.

    Use as ``async with TmdbClient(settings) as client``. ``session`` and ``limiter`` can be
    injected; an injected session is not closed by the client. ``should_stop`` is polled
    before each attempt and each retry wait: when it says so the id is left unresolved.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        limiter: RateLimiter | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        stop_retrying_at: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_answer: Callable[[], None] | None = None,
    ) -> None:
        if not settings.api_key and not settings.access_token:
            raise ConfigError("api_key", "set TMDB_API_KEY or TMDB_ACCESS_TOKEN")
        self._settings = settings
        self._session = session
        self._own_session = session is None
        self.limiter = limiter or RateLimiter(settings.rate)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._should_stop = should_stop
        self._stop_retrying_at = stop_retrying_at
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_answer = on_answer
        self.stats = RequestStats()
        self._params: dict[str, str] = {}
        self._headers = {"Accept": "application/json"}
        if settings.access_token:
            self._headers["Authorization"] = f"Bearer {settings.access_token.get()}"
        elif settings.api_key:
            self._params["api_key"] = settings.api_key.get()
        if settings.language:
            self._params["language"] = settings.language
        if settings.append_to_response:
            self._params["append_to_response"] = ",".join(settings.append_to_response)

    async def __aenter__(self) -> TmdbClient:
        if self._session is None:
            s = self._settings
            connector = aiohttp.TCPConnector(limit=s.concurrency, ttl_dns_cache=300)
            # No `total` timeout: it would count the wait for a pool slot. Connect and read
            # inactivity are bounded here; the whole attempt is bounded in `_attempt`.
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=s.connect_timeout, sock_read=s.request_timeout
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, raise_for_status=False
            )
            # aiohttp silently re-sends a GET once when a kept-alive connection is closed
            # under it. That second request bypasses the rate limiter (one grant, two
            # requests) and the retry count, so turn it off: our own retries handle it.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def url_for(self, imdb_id: str) -> str:
        """The movie-details URL for a validated IMDb id (no credentials in it)."""
        if not is_imdb_id(imdb_id):
            raise ValueError(f"not an IMDb title id (tt + 7 to 10 digits): {imdb_id!r}")
        return f"{self._settings.tmdb_url}/movie/{imdb_id}"

    async def _attempt(self, imdb_id: str, url: str) -> FetchResult:
        assert self._session is not None, "use `async with TmdbClient(...)`"
        async with self._slots:
            if self._should_stop():
                raise _Stopped
            await self.limiter.acquire()
            if self._should_stop():
                raise _Stopped
            stats = self.stats
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            try:
                # The slot is ours, so this bounds the request itself, not a queue wait.
                budget = self._settings.connect_timeout + self._settings.request_timeout
                async with (
                    asyncio.timeout(budget),
                    self._session.get(url, params=self._params, headers=self._headers) as resp,
                ):
                    status = resp.status
                    body = await resp.read()
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except TimeoutError:
                raise _Retryable("timeout") from None
            except aiohttp.ClientPayloadError:
                raise _Retryable("truncated body") from None
            except aiohttp.ServerDisconnectedError:
                raise _Retryable("connection closed by server") from None
            except aiohttp.ClientConnectionError as exc:
                raise _Retryable(f"connection error ({type(exc).__name__})") from None
            except aiohttp.ClientError as exc:
                raise _Retryable(f"client error ({type(exc).__name__})") from None
            finally:
                stats.in_flight -= 1
        return self._classify(imdb_id, status, body, retry_after)

    def _classify(
        self, imdb_id: str, status: int, body: bytes, retry_after: float | None
    ) -> FetchResult:
        if status == 200:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise _Retryable("HTTP 200 with a body that is not JSON") from None
            if not isinstance(data, dict):
                raise _Retryable("HTTP 200 with a body that is not a JSON object")
            return FetchResult(imdb_id, Outcome.FETCHED, body=body)
        code = _tmdb_code(body)
        suffix = f" (status_code {code})" if code is not None else ""
        if status == 404:
            return FetchResult(imdb_id, Outcome.NOT_FOUND, reason=f"HTTP 404{suffix}")
        if status == 401:
            message = _AUTH_MESSAGES.get(
                code or 7, f"TMDB rejected the credentials (HTTP 401{suffix})"
            )
            raise AuthError(code, message)
        if status == 429:
            self.stats.throttled += 1
            pause = retry_after if retry_after is not None else self._throttle_backoff()
            self.limiter.pause(pause)
            raise _Retryable(f"HTTP 429{suffix}", throttled=True)
        if status >= 500 or status == 408:
            raise _Retryable(f"HTTP {status}{suffix}")
        raise _Final(f"HTTP {status}{suffix}")

    def _throttle_backoff(self) -> float:
        # No Retry-After: back off for about a second, with jitter so that clients
        # sharing the key do not come back in lockstep.
        return 1.0 + self._rng.random()

    async def fetch(self, imdb_id: str) -> FetchResult:
        """Ask TMDB for one movie, with retries; return what became of it.

        Errors (5xx, timeouts, resets, bad bodies) are retried with exponential backoff
        and "equal jitter", at most ``max_attempts`` times and ``max_retry_wait`` seconds
        of backoff in all. A 429 is not the movie's fault: the shared limiter holds every
        worker for ``Retry-After``, and throttled attempts count against a separate, larger
        bound (``MAX_THROTTLED``). Raises :class:`~tmdb_ingest.errors.AuthError` on 401.
        Never raises for a per-movie problem: those come back as ``failed`` with the last
        reason.
        """
        url = self.url_for(imdb_id)
        tally = _Tally()

        async def attempt() -> FetchResult:
            tally.attempts += 1
            try:
                return await self._attempt(imdb_id, url)
            except _Retryable as exc:
                if exc.throttled:
                    tally.throttles += 1
                else:
                    tally.errors += 1
                raise
            finally:
                if self._on_answer is not None:
                    self._on_answer()

        def wait(state: RetryCallState) -> float:
            if tally.throttled_last(state):
                return self._rng.uniform(0.0, 0.2)  # the limiter already holds everyone
            s = self._settings
            ceiling = min(s.backoff_max, s.backoff_initial * 2 ** max(0, tally.errors - 1))
            return float(self._rng.uniform(ceiling / 2, ceiling))

        def stop(state: RetryCallState) -> bool:
            s = self._settings
            upcoming = state.upcoming_sleep
            throttled = tally.throttled_last(state)
            if throttled:
                if tally.throttles >= MAX_THROTTLED:
                    return True
            elif tally.errors >= s.max_attempts or tally.waited + upcoming > s.max_retry_wait:
                return True
            limit = self._stop_retrying_at()
            if self._should_stop() or (limit is not None and self._clock() + upcoming > limit):
                raise _Stopped
            if not throttled:
                tally.waited += upcoming
            return False

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retryable), wait=wait, stop=stop, reraise=False
        )
        try:
            result: FetchResult = await retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            reason = last.reason if isinstance(last, _Retryable) else type(last).__name__
            result = FetchResult(imdb_id, Outcome.FAILED, reason=reason)
        except _Final as exc:
            result = FetchResult(imdb_id, Outcome.FAILED, reason=exc.reason)
        except _Stopped:
            result = FetchResult(imdb_id, Outcome.UNRESOLVED)
        self.stats.retries += max(0, tally.attempts - 1)
        return FetchResult(imdb_id, result.outcome, result.body, result.reason, tally.attempts)
