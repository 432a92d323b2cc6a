"""The TMDB client: authentication, one request per movie, and its limits.

A plain client, in the manner of httpx's: it knows its endpoint, its credentials, a
:class:`~tmdb_ingest.fetch.policy.ClientPolicy` (timeouts, retries) and a
:class:`~tmdb_ingest.fetch.rate.limiter.Limiter`, nothing of the run that uses it. It is
stopped by cancellation or by the ``retry_until`` deadline (on the event loop's clock)
given to :meth:`TmdbClient.fetch`.

:meth:`TmdbClient.fetch` asks for one movie, retrying as the policy says
(:class:`~tmdb_ingest.fetch.policy.Tries`), and returns a
:class:`~tmdb_ingest.fetch.outcomes.FetchResult`: ``fetched``, ``not_found``, ``failed``
(the attempts or the retry time ran out; the last reason is kept) or ``unresolved`` (the
deadline came first). What each answer means is :func:`~tmdb_ingest.fetch.outcomes.classify`'s
to say. A 401 raises :class:`~tmdb_ingest.errors.AuthError`.

:meth:`TmdbClient.check` is the run's first request, sent alone before any id:
``GET {base_url}/configuration`` must be a 200 JSON object with ``images``, which TMDB's
v3 API sends for any valid key. It raises ``AuthError`` for a rejected key (one request,
not one per worker) and :class:`~tmdb_ingest.errors.TmdbUnreachable` for anything else:
a wrong path (TMDB's own 404 for an unknown path), nothing answering, a certificate that
does not verify, a proxy that refuses; within seconds.

The network is the platform's (:mod:`tmdb_ingest.fetch.network`): the proxy that
``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` name, and the trust store OpenSSL finds when the
session is made (``SSL_CERT_FILE``, ``SSL_CERT_DIR``).

Secrets: the key is sent as the ``api_key`` query parameter, the token as a Bearer header;
neither appears in a reason, an exception message or a log line (reasons are built from
status codes, exception type names, OpenSSL's words and host:port, never from a URL's
query or a proxy's credentials).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import aiohttp
import orjson

from tmdb_ingest.config.options import default
from tmdb_ingest.config.values import require_credentials
from tmdb_ingest.errors import TmdbUnreachable
from tmdb_ingest.fetch.network import Proxy, describe_client_error, proxy_for, ssl_context
from tmdb_ingest.fetch.outcomes import (
    FetchResult,
    Outcome,
    Retryable,
    classify,
    retry_after,
    stated_limit,
    throttled,
    tmdb_code,
)
from tmdb_ingest.fetch.policy import ClientPolicy, Tries
from tmdb_ingest.fetch.rate.limiter import Limiter, StatesLimit, make_limiter
from tmdb_ingest.ids import is_imdb_id

if TYPE_CHECKING:
    from tmdb_ingest.config.settings import Secret, Settings

__all__ = ["ClientPolicy", "FetchResult", "Outcome", "RequestStats", "TmdbClient"]


@dataclass(slots=True)
class RequestStats:
    """Counters over all requests of one client."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


# The first request's policy: a few quick tries, so that a wrong URL is found in seconds.
_CHECK_POLICY_ATTEMPTS = 3
_CHECK_POLICY_BACKOFF = 0.5


class _Hopeless(Retryable):
    """A certificate that does not verify, a proxy that wants credentials: no retry gets
    past it. Mid-run it is retried like any error; the first request stops the run at
    once on it, saying what to check (``hint``)."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason, foreign=True)
        self.hint = hint


class _NotSent(Exception):
    """The client stopped sending (:meth:`TmdbClient.stop_sending`) before this attempt."""


class TmdbClient:
    """Fetches movie details from TMDB, one id per request, within its limits.

    Use as ``async with TmdbClient(url, api_key=...) as client`` (or
    :meth:`from_settings`). ``session`` and ``limiter`` can be injected; an injected
    session is not closed by the client and brings its own proxy and TLS settings (an
    own session takes them from the environment, see :mod:`tmdb_ingest.fetch.network`).
    At most ``concurrency`` requests are in flight.
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
        self.proxy: Proxy | None = None  # the platform's proxy for base_url, once entered
        self._slots = asyncio.Semaphore(concurrency)
        self._rng = rng or random.Random()
        self.stats = RequestStats()
        self.tmdb_seen = False  # any answer so far that TMDB (not a proxy) gave
        self._sending_stopped = False
        self._waiting_for_slot: set[asyncio.Timeout] = set()
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
            # The environment when the run starts decides the proxy and the trust store
            # (an injected session brings its own).
            self.proxy = proxy_for(self.base_url)
            connector = aiohttp.TCPConnector(
                limit=self.concurrency,
                ttl_dns_cache=300,
                ssl=ssl_context() if self.base_url.startswith("https:") else True,
            )
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

    def stop_sending(self) -> None:
        """Send nothing new from now on: a stop was asked (a signal, a lost lease).

        Calls waiting for a rate slot give up at once and every later attempt is not
        sent: those ids come back ``unresolved``. Requests already sent go on, within
        their timeout. The limiter is not touched.
        """
        self._sending_stopped = True
        now = asyncio.get_running_loop().time()
        for waiting in self._waiting_for_slot:
            waiting.reschedule(now)

    async def _slot(self) -> float:
        """A rate slot (its grant time), unless :meth:`stop_sending` comes first."""
        if self._sending_stopped:
            raise _NotSent
        # A timeout with no deadline is a cancel scope: stop_sending moves its deadline to
        # now, which cancels the acquire (and only it) cleanly.
        waiting = asyncio.timeout(None)
        try:
            async with waiting:
                self._waiting_for_slot.add(waiting)
                try:
                    return await self.limiter.acquire()
                finally:
                    self._waiting_for_slot.discard(waiting)
        except TimeoutError:
            if waiting.expired():
                raise _NotSent from None
            raise

    def url_for(self, imdb_id: str) -> str:
        """The movie-details URL for a validated IMDb id (no credentials in it)."""
        if not is_imdb_id(imdb_id):
            raise ValueError(f"not an IMDb title id (tt + 7 to 10 digits): {imdb_id!r}")
        return f"{self.base_url}/movie/{imdb_id}"

    # -- one attempt ----------------------------------------------------------------------

    async def _attempt(self, imdb_id: str, url: str) -> FetchResult:
        status, body = await self._send(url)
        if tmdb_code(body) is not None:
            self.tmdb_seen = True
        result = classify(imdb_id, status, body)
        self.tmdb_seen = True  # a movie or TMDB's own 404: TMDB answered
        return result

    async def _send(self, url: str) -> tuple[int, bytes]:
        """One request within the limits (a slot, a limiter grant), counted; a 429 raises."""
        async with self._slots:
            sent_at = await self._slot()
            stats = self.stats
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            try:
                status, body, retry_in = await self._request(url)
            except BaseException:
                self.limiter.on_answer(sent_at)
                raise
            finally:
                stats.in_flight -= 1
        if status == 429:
            self.stats.throttled += 1
            self.tmdb_seen = True
            stated = stated_limit(body)
            if stated is not None and isinstance(self.limiter, StatesLimit):
                self.limiter.stated_limit(stated)
            self.limiter.on_throttle(sent_at, retry_in)
            raise throttled(body)
        self.limiter.on_answer(sent_at)
        return status, body

    async def _request(self, url: str) -> tuple[int, bytes, float | None]:
        assert self._session is not None, "use `async with TmdbClient(...)`"
        try:
            # The slot is ours, so this bounds the request itself, not a queue wait.
            async with (
                asyncio.timeout(self.policy.attempt_timeout),
                self._session.get(
                    url,
                    params=self._params,
                    headers=self._headers,
                    proxy=self.proxy.url if self.proxy else None,
                    proxy_headers=self.proxy.headers if self.proxy else None,
                ) as resp,
            ):
                body = await resp.read()
                return resp.status, body, retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            raise Retryable("timeout", foreign=True) from None
        except aiohttp.ClientPayloadError:
            raise Retryable("truncated body") from None
        except aiohttp.ServerDisconnectedError:
            raise Retryable("connection closed by server") from None
        except (
            aiohttp.ClientConnectorCertificateError,
            aiohttp.ClientConnectorSSLError,
            aiohttp.ClientProxyConnectionError,
            aiohttp.ClientHttpProxyError,
        ) as exc:
            reason, hint = describe_client_error(exc, self.proxy) or (type(exc).__name__, "")
            # A refused or failing (5xx) proxy may come back; a certificate will not verify
            # on a second try, nor will a proxy let us through without credentials.
            retry = isinstance(exc, aiohttp.ClientProxyConnectionError) or (
                isinstance(exc, aiohttp.ClientHttpProxyError) and exc.status >= 500
            )
            raise (Retryable(reason, foreign=True) if retry else _Hopeless(reason, hint)) from None
        except aiohttp.ClientConnectionError as exc:
            raise Retryable(f"connection error ({type(exc).__name__})", foreign=True) from None
        except aiohttp.ClientError as exc:
            raise Retryable(f"client error ({type(exc).__name__})") from None

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
        if retry_until is not None and asyncio.get_running_loop().time() >= retry_until:
            return FetchResult(imdb_id, Outcome.UNRESOLVED)
        tries = Tries(policy or self.policy, rng=self._rng, retry_until=retry_until)
        try:
            return await tries.run(imdb_id, lambda: self._attempt(imdb_id, url))
        except _NotSent:
            return FetchResult(imdb_id, Outcome.UNRESOLVED, attempts=tries.attempts)
        finally:
            self.stats.retries += max(0, tries.attempts - 1)

    async def check(self, *, retry_until: float | None = None) -> bool:
        """Before any id: prove that ``base_url`` is TMDB's v3 API and takes the credentials.

        Sends ``GET {base_url}/configuration`` alone, through the limiter (it counts in
        :attr:`stats`), and wants a 200 JSON object with ``images``, which TMDB sends for
        any valid key. Connection errors, timeouts, 5xx and 429 are tried again: a few
        quick tries while nothing shows that TMDB answered, the policy's attempts once
        TMDB's own error body came back (an outage, not a wrong URL). Returns True when
        proven, False when ``retry_until`` (on the loop's clock) or :meth:`stop_sending`
        came first. Raises :class:`AuthError` on 401 and :class:`TmdbUnreachable` for any
        other answer: one line naming the URL (no query), the proxy if one is used, and
        what answered.
        """
        url = f"{self.base_url}/configuration"
        loop = asyncio.get_running_loop()
        quick = replace(
            self.policy,
            max_attempts=_CHECK_POLICY_ATTEMPTS,
            backoff_initial=_CHECK_POLICY_BACKOFF,
            backoff_max=2 * _CHECK_POLICY_BACKOFF,
        )
        errors = throttles = 0
        waited = 0.0
        while True:
            if retry_until is not None and loop.time() >= retry_until:
                return False
            try:
                status, body = await self._send(url)
                problem = self._configuration_problem(status, body)
            except _NotSent:
                return False  # a stop came first: nothing proven, nothing wrong
            except Retryable as exc:
                if isinstance(exc, _Hopeless):
                    where = self._where(via=not exc.reason.startswith("the proxy"))
                    raise TmdbUnreachable(
                        f"{exc.reason}, on the way to {where}; check {exc.hint}"
                    ) from None
                last = exc
            else:
                if problem is None:
                    self.tmdb_seen = True
                    return True
                raise TmdbUnreachable(
                    f"{problem}: not TMDB's v3 API at {self._where()} (check --tmdb-url)"
                )
            if last.throttled:
                throttles += 1
            else:
                errors += 1
            policy = self.policy if self.tmdb_seen else quick
            wait = (
                self._rng.uniform(0.0, 0.2) if last.throttled else policy.backoff(errors, self._rng)
            )
            if (
                errors >= policy.max_attempts
                or throttles >= policy.max_throttled
                or (not last.throttled and waited + wait > policy.max_retry_wait)
            ):
                raise self._gave_up(last, errors + throttles)
            if retry_until is not None and loop.time() + wait > retry_until:
                return False
            waited += 0.0 if last.throttled else wait
            await asyncio.sleep(wait)

    def _configuration_problem(self, status: int, body: bytes) -> str | None:
        """None when the answer is TMDB's configuration, else what answered instead.

        Raises :class:`AuthError` on 401 and :class:`Retryable` for what may pass (5xx, 408).
        """
        code = tmdb_code(body)
        if code is not None:
            self.tmdb_seen = True
        if status == 200:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return "200 with a body that is not JSON"
            if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
                return "200 without TMDB's `images`"
            return None
        suffix = f" with TMDB's code {code}" if code is not None else ""
        if status == 401:
            classify("configuration", status, body)  # raises AuthError: TMDB's code, no key
        if status >= 500 or status == 408:
            raise Retryable(f"HTTP {status}{suffix}", foreign=code is None)
        if status == 407 and self.proxy is not None:
            raise _Hopeless(
                f"the proxy {self.proxy.name} answered HTTP 407 (credentials wanted)",
                f"{self.proxy.variable} and NO_PROXY",
            )
        if status == 404 and code is None:
            return "404 that is not TMDB's"
        return f"{status}{suffix}"

    def _where(self, *, via: bool = True) -> str:
        """The URL as a message may show it, and the proxy in between, if any."""
        proxy = self.proxy if via else None
        via_text = f" through the proxy {proxy.name}" if proxy is not None else ""
        return f"{_safe_url(self.base_url)}{via_text}"

    def _gave_up(self, last: Retryable, attempts: int) -> TmdbUnreachable:
        proxy = self.proxy
        proxy_hint = f"{proxy.variable}, NO_PROXY" if proxy else "any proxy (HTTPS_PROXY)"
        if last.foreign:
            return TmdbUnreachable(
                f"TMDB did not answer at {self._where(via=not last.reason.startswith('the proxy'))}"
                f": {last.reason} ({attempts} attempts); check --tmdb-url, the network (a route "
                f"to the internet, a NAT gateway) and {proxy_hint}"
            )
        return TmdbUnreachable(
            f"TMDB at {self._where()} kept answering {last.reason} ({attempts} attempts) "
            "to the first request; try again later"
        )


def _safe_url(url: str) -> str:
    """The URL without a user:password part, a query or a fragment (either may hold a key)."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    path = path.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}"
