"""The TMDB client: authentication, one request per movie, and the outcome of each.

A plain client, in the manner of httpx's: it knows its endpoint, its credentials, a
:class:`ClientPolicy` (timeouts, retries) and a :class:`~tmdb_ingest.fetch.rate.limiter.Limiter`,
nothing of the run that uses it. It is stopped by cancellation or by the ``retry_until``
deadline (on the event loop's clock) given to :meth:`TmdbClient.fetch`.

:meth:`TmdbClient.fetch` asks for one movie, retrying with tenacity, and returns a
:class:`FetchResult`: ``fetched`` (a 200 whose body is a JSON object, kept byte for
byte), ``not_found`` (a 404 with TMDB's body, ``status_code`` 34: final), ``failed``
(the attempts or the retry time ran out; the last reason is kept) or ``unresolved`` (the
deadline came first: the id is neither fetched nor failed). A 401 raises
:class:`~tmdb_ingest.errors.AuthError`. A 404 that is not TMDB's (an HTML page from a
proxy or a wrong URL) is never ``not_found``: it is retried like a 5xx.

:meth:`TmdbClient.check` is the run's first request, sent alone: it raises ``AuthError``
for a rejected key (one request, not one per worker) and
:class:`~tmdb_ingest.errors.TmdbUnreachable` when nothing that answers is TMDB
(connection refused, timeouts, foreign 404s), within seconds.

Secrets: the key is sent as the ``api_key`` query parameter, the token as a Bearer header;
neither appears in a reason, an exception message or a log line (reasons are built from
status codes and exception type names only, never from URLs).
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import aiohttp
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
)

from tmdb_ingest.config.options import default
from tmdb_ingest.config.values import require_credentials
from tmdb_ingest.errors import AuthError, TmdbUnreachable
from tmdb_ingest.fetch.rate.limiter import Limiter, StatesLimit, make_limiter
from tmdb_ingest.ids import is_imdb_id

if TYPE_CHECKING:
    from tmdb_ingest.config.settings import Secret, Settings

__all__ = ["ClientPolicy", "FetchResult", "Outcome", "RequestStats", "TmdbClient"]

_AUTH_MESSAGES = {
    7: "TMDB rejected the API key or token (status_code 7: invalid key)",
    10: "TMDB rejected the API key (status_code 10: suspended key)",
}


class Outcome(enum.StrEnum):
    """What became of one id."""

    FETCHED = "fetched"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    UNRESOLVED = "unresolved"  # stopped (deadline, cancellation) before an answer


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


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """Timeouts and retries: a value object, like httpx's ``Timeout`` and ``Limits``.

    Errors (5xx, timeouts, resets, bad bodies, foreign 404s) are tried at most
    ``max_attempts`` times with exponential backoff and "equal jitter", and at most
    ``max_retry_wait`` seconds of backoff in all. 429s are not the movie's fault: they
    count against ``max_throttled`` instead, and the limiter does the waiting.
    """

    connect_timeout: float = default("connect_timeout")
    request_timeout: float = default("request_timeout")
    max_attempts: int = default("max_attempts")
    max_retry_wait: float = default("max_retry_wait")
    backoff_initial: float = default("backoff_initial")
    backoff_max: float = default("backoff_max")
    max_throttled: int = 30  # not a setting: 429s are the limiter's to wait out

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientPolicy:
        return cls(
            connect_timeout=settings.connect_timeout,
            request_timeout=settings.request_timeout,
            max_attempts=settings.max_attempts,
            max_retry_wait=settings.max_retry_wait,
            backoff_initial=settings.backoff_initial,
            backoff_max=settings.backoff_max,
        )

    @property
    def attempt_timeout(self) -> float:
        """The longest one attempt may take, once it has its connection slot."""
        return self.connect_timeout + self.request_timeout

    def backoff(self, errors: int, rng: random.Random) -> float:
        """The wait after the ``errors``-th error in a row: equal jitter, capped."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** max(0, errors - 1))
        return rng.uniform(ceiling / 2, ceiling)


# The first request's policy: a few quick tries, so that a wrong URL is found in seconds.
_CHECK_POLICY_ATTEMPTS = 3
_CHECK_POLICY_BACKOFF = 0.5


class _Retryable(Exception):
    """An answer worth trying again (429, 5xx, timeout, reset, bad body, foreign 404)."""

    def __init__(self, reason: str, *, throttled: bool = False, foreign: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.throttled = throttled  # a 429: the limiter, not the backoff, does the waiting
        self.foreign = foreign  # nothing shows that TMDB answered (refused, timeout, HTML 404)


class _Final(Exception):
    """An answer not worth trying again that is not a 404 (e.g. 400, 403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from TMDB; fall back to backoff
    return min(max(seconds, 0.0), 120.0)


def _tmdb_code(body: bytes) -> int | None:
    """TMDB's ``status_code`` in an error body, or None when the body is not TMDB's."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    code = data.get("status_code") if isinstance(data, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


_STATED_LIMIT = re.compile(rb"allowed limit of \((\d+(?:\.\d+)?)\)")


def _stated_limit(body: bytes) -> float | None:
    """The limit a TMDB 429 body states (code 25: "Your request count (41) is over the
    allowed limit of (40)."), or None when it states none."""
    match = _STATED_LIMIT.search(body[:1000])
    return float(match.group(1)) if match else None


@dataclass(slots=True)
class _Tally:
    """Attempts of one fetch, by kind, and the backoff slept so far."""

    attempts: int = 0
    errors: int = 0
    throttles: int = 0
    waited: float = 0.0
    deadline_hit: bool = False


class TmdbClient:
    """Fetches movie details from TMDB, one id per request, within its limits.

    Use as ``async with TmdbClient(url, api_key=...) as client`` (or
    :meth:`from_settings`). ``session`` and ``limiter`` can be injected; an injected
    session is not closed by the client. At most ``concurrency`` requests are in flight.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Secret | None = None,
        access_token: Secret | None = None,
        language: str | None = None,
        append_to_response: Sequence[str] = (),
        concurrency: int = default("concurrency"),
        policy: ClientPolicy | None = None,
        limiter: Limiter | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        require_credentials(api_key, access_token)
        self.base_url = base_url.rstrip("/")
        self.policy = policy or ClientPolicy()
        self.limiter: Limiter = limiter or make_limiter(default("rate"))
        self.concurrency = concurrency
        self._session = session
        self._own_session = session is None
        self._slots = asyncio.Semaphore(concurrency)
        self._rng = rng or random.Random()
        self.stats = RequestStats()
        self.tmdb_seen = False  # any answer so far that TMDB (not a proxy) gave
        self._params: dict[str, str] = {}
        self._headers = {"Accept": "application/json"}
        if access_token:
            self._headers["Authorization"] = f"Bearer {access_token.get()}"
        elif api_key:
            self._params["api_key"] = api_key.get()
        if language:
            self._params["language"] = language
        if append_to_response:
            self._params["append_to_response"] = ",".join(append_to_response)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        limiter: Limiter | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> TmdbClient:
        """A client for what ``settings`` name: endpoint, credentials, language, timeouts."""
        return cls(
            settings.tmdb_url,
            api_key=settings.api_key,
            access_token=settings.access_token,
            language=settings.language,
            append_to_response=settings.append_to_response,
            concurrency=settings.concurrency,
            policy=ClientPolicy.from_settings(settings),
            limiter=limiter or make_limiter(settings.rate),
            session=session,
            rng=rng,
        )

    async def __aenter__(self) -> TmdbClient:
        if self._session is None:
            p = self.policy
            connector = aiohttp.TCPConnector(limit=self.concurrency, ttl_dns_cache=300)
            # No `total` timeout: it would count the wait for a pool slot. Connect and read
            # inactivity are bounded here; the whole attempt is bounded in `_attempt`.
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=p.connect_timeout, sock_read=p.request_timeout
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, raise_for_status=False
            )
            # aiohttp silently re-sends a GET once when a kept-alive connection is closed
            # under it. That second request bypasses the rate limiter (one grant, two
            # requests) and the retry count, so turn it off: our own retries handle it.
            # tests/test_tmdb_tcp.py proves it over real TCP, so a rename in aiohttp fails
            # a test instead of silently undoing this.
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
        return f"{self.base_url}/movie/{imdb_id}"

    # -- one attempt ----------------------------------------------------------------------

    async def _attempt(self, imdb_id: str, url: str) -> FetchResult:
        async with self._slots:
            sent_at = await self.limiter.acquire()
            stats = self.stats
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            try:
                status, body, retry_after = await self._request(url)
            except BaseException:
                self.limiter.on_answer(sent_at)
                raise
            finally:
                stats.in_flight -= 1
        if status == 429:
            self.stats.throttled += 1
            self.tmdb_seen = True
            code = _tmdb_code(body)
            stated = _stated_limit(body) if code == 25 else None
            if stated is not None and isinstance(self.limiter, StatesLimit):
                self.limiter.stated_limit(stated)
            self.limiter.on_throttle(sent_at, retry_after)
            raise _Retryable(
                f"HTTP 429{f' (status_code {code})' if code is not None else ''}", throttled=True
            )
        self.limiter.on_answer(sent_at)
        return self._classify(imdb_id, status, body)

    async def _request(self, url: str) -> tuple[int, bytes, float | None]:
        assert self._session is not None, "use `async with TmdbClient(...)`"
        try:
            # The slot is ours, so this bounds the request itself, not a queue wait.
            async with (
                asyncio.timeout(self.policy.attempt_timeout),
                self._session.get(url, params=self._params, headers=self._headers) as resp,
            ):
                body = await resp.read()
                return resp.status, body, _retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            raise _Retryable("timeout", foreign=True) from None
        except aiohttp.ClientPayloadError:
            raise _Retryable("truncated body") from None
        except aiohttp.ServerDisconnectedError:
            raise _Retryable("connection closed by server") from None
        except aiohttp.ClientConnectionError as exc:
            raise _Retryable(f"connection error ({type(exc).__name__})", foreign=True) from None
        except aiohttp.ClientError as exc:
            raise _Retryable(f"client error ({type(exc).__name__})") from None

    def _classify(self, imdb_id: str, status: int, body: bytes) -> FetchResult:
        if status == 200:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise _Retryable("HTTP 200 with a body that is not JSON") from None
            if not isinstance(data, dict):
                raise _Retryable("HTTP 200 with a body that is not a JSON object")
            self.tmdb_seen = True
            return FetchResult(imdb_id, Outcome.FETCHED, body=body)
        code = _tmdb_code(body)
        if code is not None:
            self.tmdb_seen = True
        suffix = f" (status_code {code})" if code is not None else ""
        if status == 404:
            if code == 34:
                return FetchResult(imdb_id, Outcome.NOT_FOUND, reason=f"HTTP 404{suffix}")
            raise _Retryable(f"HTTP 404 that is not TMDB's{suffix}", foreign=code is None)
        if status == 401:
            message = _AUTH_MESSAGES.get(
                code or 7, f"TMDB rejected the credentials (HTTP 401{suffix})"
            )
            raise AuthError(code, message)
        if status >= 500 or status == 408:
            raise _Retryable(f"HTTP {status}{suffix}")
        raise _Final(f"HTTP {status}{suffix}")

    # -- one id, with retries ---------------------------------------------------------------

    async def fetch(
        self, imdb_id: str, *, retry_until: float | None = None, policy: ClientPolicy | None = None
    ) -> FetchResult:
        """Ask TMDB for one movie, with retries; return what became of it.

        ``retry_until`` is a deadline on the event loop's clock: no retry wait that would
        end past it is begun, and the id comes back ``unresolved``. Cancel the call to stop
        it at once. Raises :class:`~tmdb_ingest.errors.AuthError` on 401. Never raises for
        a per-movie problem: those come back as ``failed`` with the last reason.
        """
        url = self.url_for(imdb_id)
        policy = policy or self.policy
        loop = asyncio.get_running_loop()
        if retry_until is not None and loop.time() >= retry_until:
            return FetchResult(imdb_id, Outcome.UNRESOLVED)
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

        def last_throttled(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return isinstance(exc, _Retryable) and exc.throttled

        def wait(state: RetryCallState) -> float:
            if last_throttled(state):
                return self._rng.uniform(0.0, 0.2)  # the limiter already holds everyone
            return policy.backoff(tally.errors, self._rng)

        def out_of_attempts(state: RetryCallState) -> bool:
            if last_throttled(state):
                return tally.throttles >= policy.max_throttled
            upcoming = state.upcoming_sleep
            return tally.errors >= policy.max_attempts or (
                tally.waited + upcoming > policy.max_retry_wait
            )

        def past_deadline(state: RetryCallState) -> bool:
            late = retry_until is not None and loop.time() + state.upcoming_sleep > retry_until
            tally.deadline_hit = tally.deadline_hit or late
            return late

        def count_wait(state: RetryCallState) -> None:
            if not last_throttled(state):
                tally.waited += state.upcoming_sleep

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retryable),
            wait=wait,
            stop=lambda state: out_of_attempts(state) or past_deadline(state),
            before_sleep=count_wait,
            reraise=False,
        )
        try:
            result: FetchResult = await retrying(attempt)
        except RetryError as exc:
            if tally.deadline_hit:
                result = FetchResult(imdb_id, Outcome.UNRESOLVED)
            else:
                last = exc.last_attempt.exception()
                reason = last.reason if isinstance(last, _Retryable) else type(last).__name__
                result = FetchResult(imdb_id, Outcome.FAILED, reason=reason)
        except _Final as exc:
            result = FetchResult(imdb_id, Outcome.FAILED, reason=exc.reason)
        finally:
            self.stats.retries += max(0, tally.attempts - 1)
        return replace(result, attempts=tally.attempts)

    async def check(self, imdb_id: str, *, retry_until: float | None = None) -> FetchResult | None:
        """The run's first request, sent alone: is TMDB there, and does it take the key?

        Tries ``imdb_id`` a few times quickly. Raises :class:`AuthError` when the key is
        rejected, and :class:`TmdbUnreachable` when no answer came from TMDB (connection
        errors, timeouts, 404s without TMDB's body). Returns the id's result when it is
        final (fetched or not found), else None: the id then goes through the normal
        retries with the others.
        """
        quick = replace(
            self.policy,
            max_attempts=_CHECK_POLICY_ATTEMPTS,
            backoff_initial=_CHECK_POLICY_BACKOFF,
            backoff_max=2 * _CHECK_POLICY_BACKOFF,
        )
        result = await self.fetch(imdb_id, retry_until=retry_until, policy=quick)
        if result.outcome in (Outcome.FETCHED, Outcome.NOT_FOUND):
            return result
        if not self.tmdb_seen and result.outcome is Outcome.FAILED:
            raise TmdbUnreachable(
                f"TMDB did not answer at {_safe_url(self.base_url)}: {result.reason} "
                f"({result.attempts} attempts); check --tmdb-url, the network "
                "(a route to the internet, a NAT gateway) and any proxy"
            )
        return None


def _safe_url(url: str) -> str:
    """The URL without a user:password part, a query or a fragment (either may hold a key)."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    path = path.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}"
