"""A fake TMDB over HTTP or HTTPS: movie details, find, configuration, auth, rate limit, faults.

:class:`Emulator` is an ``aiohttp.web`` server on ``127.0.0.1`` and a free port, opened with
``async with``; :class:`EmulatorThread` runs one in a background thread for synchronous
code (the demo, subprocess benchmarks). Every answer is decided by the seed: bodies (see
:mod:`tmdb_ingest.emulator.bodies`), which ids are missing, and, per id and attempt number,
the latency, the injected fault and whether a 429 carries ``Retry-After``. So two runs that
ask for the same ids the same number of times see the same answers, whatever the order.

Each request goes through, in order: the rate limit (429, code 25, decided on arrival,
like TMDB's edge), auth (401, code 7 or 10), fault injection (not on configuration),
latency, then the answer (200 body, or 404 code 34 for a missing or malformed id and, as
TMDB answers, for every unknown path: ``/4/...``, ``/movie/...`` without ``/3``, a typo).
``GET /3/configuration`` answers TMDB's configuration (what a client asks first to prove
its URL). With ``tls_cert`` and ``tls_key`` it serves HTTPS.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import math
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from types import TracebackType
from typing import Literal, Self

import orjson
from aiohttp import web

from tmdb_ingest.emulator import bodies, changes
from tmdb_ingest.emulator.configuration import configuration_bytes

__all__ = [
    "ALL_FAULTS",
    "Emulator",
    "EmulatorConfig",
    "EmulatorStats",
    "EmulatorThread",
]

ALL_FAULTS: tuple[str, ...] = (
    "500_json",
    "503_json",
    "502_json",
    "504_json",
    "503_html",
    "reset",
    "truncated",
    "stall",
    "bad_json",
)

_MESSAGES = {
    5: "Invalid parameters: Your request parameters are incorrect.",
    22: "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer.",
    7: "Invalid API key: You must be granted a valid key.",
    9: "Service offline: This service is temporarily offline, try again later.",
    10: "Suspended API key: Access to your account has been suspended, contact TMDB.",
    11: "Internal error: Something went wrong, contact TMDB.",
    24: "Your request to the backend server timed out. Try again.",
    34: "The resource you requested could not be found.",
    43: "Couldn't connect to the backend server.",
    46: "The API is undergoing maintenance. Try again later.",
}
_HTML_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
    b"<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
    b"<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n"
)
_HTML_200 = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body><p>Checking your browser before accessing api.themoviedb.org.</p></body></html>"
)
_EMPTY_FIND: dict[str, list[object]] = {
    "person_results": [],
    "tv_results": [],
    "tv_episode_results": [],
    "tv_season_results": [],
}
# How long stop() lets in-flight handlers (a stall, say) finish before cancelling them.
_SHUTDOWN_TIMEOUT = 0.5
_NORMAL = NormalDist()


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves; every random choice is fixed by ``seed``.

    ``api_key`` is accepted as the ``api_key`` query parameter, ``access_token`` as
    ``Authorization: Bearer``; with both ``None`` auth is off. ``suspended_key`` (either
    way) gets 401 code 10. ``latency_ms`` is the median of a lognormal delay with
    ``latency_sigma``. ``limit`` is the most requests admitted in any one-second window
    (``None``: no limit); the rest get 429 code 25, with ``Retry-After: 1`` always, never,
    or on a random half (``retry_after``). ``limit_schedule`` moves the limit during a
    run: ``(seconds, limit)`` pairs, each in force from that many seconds after the first
    request (``limit`` before the first pair). ``missing_rate`` is the share of ids with no
    movie (404 code 34). ``fault_rate`` is the chance that a request gets one of the
    ``faults`` kinds (see :data:`ALL_FAULTS`); a ``stall`` waits ``stall_s`` first.
    ``broken_rate`` is the share of ids that answer 500 (code 11) to every request, a
    fault that no retry gets past (the run reports them ``failed``).

    ``today`` is the emulator's date (None: the UTC date now): movie bodies show the
    changes up to it and ``/movie/changes`` lists none after it. ``catalogue`` holds the
    IMDb ids whose movies change (see :mod:`tmdb_ingest.emulator.changes`), each on a
    ``change_rate`` share of the days, a ``removal_rate`` share of the changes removing
    the movie; with an empty catalogue nothing changes and the change list is empty.

    ``tls_cert`` and ``tls_key`` (PEM files: the certificate chain, its private key)
    make it serve HTTPS; :attr:`Emulator.url` then starts with ``https://``.
    """

    api_key: str | None = "test-api-key"
    access_token: str | None = "test-access-token"  # noqa: S105 - a fake for tests
    suspended_key: str | None = "suspended-key"
    latency_ms: float = 0.0
    latency_sigma: float = 0.5
    limit: float | None = None
    limit_schedule: tuple[tuple[float, float], ...] = ()
    retry_after: Literal["always", "never", "mixed"] = "always"
    missing_rate: float = 0.05
    fault_rate: float = 0.0
    faults: tuple[str, ...] = ALL_FAULTS
    broken_rate: float = 0.0
    stall_s: float = 30.0
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    today: dt.date | None = None
    catalogue: frozenset[str] = frozenset()
    change_rate: float = 0.0051
    removal_rate: float = 0.0
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: give both (HTTPS) or neither (HTTP)")
        unknown = sorted(set(self.faults) - set(ALL_FAULTS))
        if unknown:
            raise ValueError(f"faults: unknown kinds {unknown}; allowed: {', '.join(ALL_FAULTS)}")
        if self.fault_rate > 0 and not self.faults:
            raise ValueError("faults: empty, but fault_rate > 0; enable at least one kind")
        for name in ("missing_rate", "fault_rate", "broken_rate", "change_rate", "removal_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: {value} is not a probability in [0, 1]")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit: {self.limit} must be > 0 requests per second, or None")
        if any(at < 0 or value <= 0 for at, value in self.limit_schedule) or list(
            self.limit_schedule
        ) != sorted(self.limit_schedule):
            raise ValueError(
                "limit_schedule: (seconds >= 0, limit > 0) pairs in increasing time order"
            )
        if self.latency_ms < 0 or self.latency_sigma < 0 or self.stall_s < 0:
            raise ValueError("latency_ms, latency_sigma and stall_s must be >= 0")
        if self.retry_after not in ("always", "never", "mixed"):
            raise ValueError(f"retry_after: {self.retry_after!r}; allowed: always, never, mixed")


@dataclass
class EmulatorStats:
    """What the emulator saw, for tests and benchmarks to check the client against.

    Every request counts, whatever its answer: ``requests``, ``arrivals`` (its
    ``time.monotonic()`` on arrival, before the rate limit and auth) and, for the movie and
    find routes, ``by_id``; ``by_route`` counts them by route (``movie``, ``find``,
    ``changes``, ``unknown``) and ``first_by_route`` keeps each route's first arrival.
    ``by_status`` counts the status line sent, so a ``truncated``
    or ``bad_json`` fault counts as 200, and a ``reset`` (no response) or a request whose
    client went away counts nowhere; ``faults`` counts injected faults by kind.
    ``in_flight`` is the number of requests being handled now.
    """

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    throttled: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    arrivals: list[float] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    by_id: Counter[str] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    first_by_route: dict[str, float] = field(default_factory=dict)

    def max_in_window(self, window: float = 1.0) -> int:
        """The most arrivals in any half-open time window ``[t, t + window)``."""
        times = sorted(self.arrivals)
        best = 0
        for i, start in enumerate(times):
            # Arrivals before start + window, counted from i.
            best = max(best, bisect.bisect_left(times, start + window, lo=i) - i)
        return best


def _error_body(code: int, message: str | None = None) -> bytes:
    return orjson.dumps(
        {"success": False, "status_code": code, "status_message": message or _MESSAGES[code]}
    )


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=body, content_type="application/json", charset="utf-8", headers=headers
    )


class Emulator:
    """The TMDB emulator on ``config.host`` and a free port (or ``config.port``).

    Use ``async with Emulator(config) as emu:`` (or :meth:`start`/:meth:`stop`); clients
    then ask ``f"{emu.url}/movie/{imdb_id}"`` and ``f"{emu.url}/find/{imdb_id}"``.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.stats = EmulatorStats()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._admitted: deque[float] = deque()
        self._first_arrival: float | None = None
        # Attempt numbers per (route, id): they, not arrival order, pick faults and latency.
        self._attempts: Counter[str] = Counter()
        self._history = self._history_of(self.config)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving; afterwards :attr:`url` is valid."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        if self._history is not None:
            # Today's change list, computed before serving (seconds for a whole catalogue),
            # so that the first /movie/changes answers at TMDB's pace.
            self._history.changed_ids(self.today)
        app = web.Application()
        app.router.add_get("/3/movie/changes", self._changes)  # before /movie/{imdb_id}
        app.router.add_get("/3/movie/{imdb_id}", self._movie)
        app.router.add_get("/3/find/{imdb_id}", self._find)
        app.router.add_get("/3/configuration", self._configuration)
        # Counters for tests and benchmarks that run the emulator in another process.
        app.router.add_get("/_emulator/stats", self._stats)
        # Every other path is TMDB's 404 (code 34), as TMDB answers it: a --tmdb-url with a
        # wrong path (no "/3", "/4") must look as wrong here as it does there.
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        # handler_cancellation: a client that gives up on a stall cancels the handler, so
        # nothing lingers until shutdown.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, self.config.host, self.config.port, ssl_context=self._ssl_context()
            )
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    def _ssl_context(self) -> ssl.SSLContext | None:
        cfg = self.config
        if cfg.tls_cert is None or cfg.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        return context

    async def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what tests ask --------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port served on."""
        if self._port is None:
            raise RuntimeError("emulator not started: use `async with Emulator(...)`")
        return self._port

    @property
    def scheme(self) -> str:
        """``https`` when serving TLS, else ``http``."""
        return "https" if self.config.tls_cert is not None else "http"

    @property
    def url(self) -> str:
        """The API base URL, like ``http://127.0.0.1:PORT/3`` (``https://`` with TLS)."""
        return f"{self.scheme}://{self.config.host}:{self.port}/3"

    @property
    def today(self) -> dt.date:
        """The emulator's date: ``config.today``, or the UTC date now."""
        return self.config.today or dt.datetime.now(dt.UTC).date()

    def set_today(self, day: dt.date | None) -> None:
        """Move the emulator's date (None: follow the UTC date); bodies follow at once."""
        self.config = replace(self.config, today=day)

    @staticmethod
    def _history_of(config: EmulatorConfig) -> changes.ChangeHistory | None:
        if not config.catalogue:
            return None
        return changes.ChangeHistory(
            config.catalogue, config.seed, config.change_rate, removal_rate=config.removal_rate
        )

    def is_missing(self, imdb_id: str) -> bool:
        """True when ``/movie/{imdb_id}`` answers 404 (code 34), faults aside."""
        if bodies.is_missing(imdb_id, self.config.seed, self.config.missing_rate):
            return True
        return self._history is not None and self._history.removed_by(imdb_id, self.today)

    def expected_body(self, imdb_id: str, append: Iterable[str] = ()) -> bytes | None:
        """The exact bytes of the 200 body for ``imdb_id`` today, or None when it is missing."""
        if self.is_missing(imdb_id):
            return None
        if self._history is not None:
            last = self._history.last_change(imdb_id, self.today)
            if last is not None:
                return changes.changed_bytes(imdb_id, self.config.seed, last, tuple(append))
        return bodies.movie_details_bytes(imdb_id, self.config.seed, append)

    def reset_stats(self) -> None:
        """Start counting afresh (the rate-limit window and attempt numbers carry on)."""
        self.stats = EmulatorStats()

    # -- handlers --------------------------------------------------------------------

    async def _movie(self, request: web.Request) -> web.StreamResponse:
        return await self._track(request, "movie", request.match_info["imdb_id"])

    async def _find(self, request: web.Request) -> web.StreamResponse:
        return await self._track(request, "find", request.match_info["imdb_id"])

    async def _changes(self, request: web.Request) -> web.StreamResponse:
        return await self._track(request, "changes", None)

    async def _configuration(self, request: web.Request) -> web.StreamResponse:
        return await self._track(request, "configuration", None)

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        body = {
            "requests": stats.requests,
            "by_status": {str(k): v for k, v in stats.by_status.items()},
            "throttled": stats.throttled,
            "max_in_flight": stats.max_in_flight,
            "max_in_window": stats.max_in_window(1.0),
            "faults": dict(stats.faults),
            "by_route": dict(stats.by_route),
            "first_by_route": stats.first_by_route,  # time.monotonic(), as arrivals
        }
        if request.query.get("arrivals"):
            body["arrivals"] = stats.arrivals  # time.monotonic(): comparable across processes
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        return await self._track(request, "unknown", None)

    async def _track(
        self, request: web.Request, route: str, imdb_id: str | None
    ) -> web.StreamResponse:
        stats = self.stats
        now = time.monotonic()
        stats.requests += 1
        stats.by_route[route] += 1
        stats.first_by_route.setdefault(route, now)
        stats.arrivals.append(now)
        if imdb_id is not None:
            stats.by_id[imdb_id] += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            return await self._answer(request, route, imdb_id, now)
        finally:
            stats.in_flight -= 1

    def _respond(
        self, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.stats.by_status[status] += 1
        return _json(status, body, headers)

    async def _answer(
        self, request: web.Request, route: str, imdb_id: str | None, now: float
    ) -> web.StreamResponse:
        cfg = self.config
        key = f"{route}:{imdb_id if imdb_id is not None else request.path}"
        self._attempts[key] += 1
        key = f"{key}#{self._attempts[key]}"

        over = self._over_limit(now)
        if over is not None:
            self.stats.throttled += 1
            limit = self.limit_at(now - (self._first_arrival or now))
            message = f"Your request count ({over}) is over the allowed limit of ({limit:g})."
            retry = cfg.retry_after == "always" or (
                cfg.retry_after == "mixed" and bodies.unit_interval(cfg.seed, "retry", key) < 0.5
            )
            return self._respond(
                429, _error_body(25, message), {"Retry-After": "1"} if retry else None
            )

        auth_code = self._auth_error(request)
        if auth_code is not None:
            return self._respond(401, _error_body(auth_code))

        if imdb_id is not None and self._broken(imdb_id):
            return self._respond(500, _error_body(11))
        # No faults on a run's first request (configuration): a benchmark of bad days
        # should not end before it began.
        fault = self._fault(key) if route != "configuration" else None
        if fault is not None:
            self.stats.faults[fault] += 1
        if cfg.latency_ms > 0:
            z = _NORMAL.inv_cdf(bodies.unit_interval(cfg.seed, "latency", key))
            await asyncio.sleep(cfg.latency_ms * math.exp(cfg.latency_sigma * z) / 1000.0)

        if fault == "stall":
            await asyncio.sleep(cfg.stall_s)
        elif fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            # Nothing reaches the client: aiohttp drops this response on the closed transport.
            return web.Response(status=500)
        elif fault == "500_json":
            return self._respond(500, _error_body(11))
        elif fault == "502_json":
            return self._respond(502, _error_body(43))
        elif fault == "503_json":
            code = 9 if bodies.unit_interval(cfg.seed, "503", key) < 0.5 else 46
            return self._respond(503, _error_body(code))
        elif fault == "504_json":
            return self._respond(504, _error_body(24))
        elif fault == "503_html":
            self.stats.by_status[503] += 1
            return web.Response(status=503, body=_HTML_503, content_type="text/html")
        elif fault == "bad_json":
            # Labelled JSON on purpose: a client must parse the body, not trust the header.
            return self._respond(200, _HTML_200)

        status, body = self._normal(request, route, imdb_id)
        if fault == "truncated":
            return await self._truncated(request, status, body)
        return self._respond(status, body)

    def limit_at(self, elapsed: float) -> float | None:
        """The limit in force ``elapsed`` seconds after the first request (None: none)."""
        limit = self.config.limit
        for at, value in self.config.limit_schedule:
            if elapsed < at:
                break
            limit = value
        return limit

    def _over_limit(self, now: float) -> int | None:
        """None when the request is admitted, else the count it would have made."""
        if self._first_arrival is None:
            self._first_arrival = now
        limit = self.limit_at(now - self._first_arrival)
        if limit is None:
            return None
        window = self._admitted
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= limit:
            return len(window) + 1
        window.append(now)
        return None

    def _auth_error(self, request: web.Request) -> int | None:
        """None when the request is authorised, else the TMDB error code (7 or 10)."""
        cfg = self.config
        if cfg.api_key is None and cfg.access_token is None:
            return None
        key = request.query.get("api_key")
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        if cfg.suspended_key is not None and cfg.suspended_key in (key, token):
            return 10
        if (key is not None and key == cfg.api_key) or (
            token is not None and token == cfg.access_token
        ):
            return None
        return 7

    def _broken(self, imdb_id: str) -> bool:
        rate = self.config.broken_rate
        return rate > 0 and bodies.unit_interval(self.config.seed, "broken", imdb_id) < rate

    def _fault(self, key: str) -> str | None:
        cfg = self.config
        if cfg.fault_rate <= 0 or bodies.unit_interval(cfg.seed, "fault", key) >= cfg.fault_rate:
            return None
        pick = bodies.unit_interval(cfg.seed, "fault-kind", key)
        return cfg.faults[min(int(pick * len(cfg.faults)), len(cfg.faults) - 1)]

    def _normal(self, request: web.Request, route: str, imdb_id: str | None) -> tuple[int, bytes]:
        """The status and body a healthy TMDB would send."""
        seed = self.config.seed
        if route == "configuration":
            return 200, configuration_bytes()
        if route == "find":
            if request.query.get("external_source") != "imdb_id":
                return 422, _error_body(5)
            assert imdb_id is not None
            # TMDB's find answers 200 with empty lists for an id it does not know.
            results = [] if self.is_missing(imdb_id) else [bodies.movie_summary(imdb_id, seed)]
            return 200, orjson.dumps({"movie_results": results, **_EMPTY_FIND})
        if route == "changes":
            return self._change_list(request)
        if route == "movie" and imdb_id is not None:
            append = [
                part.strip()
                for part in request.query.get("append_to_response", "").split(",")
                if part.strip()
            ]
            # `language` is accepted and ignored: bodies read the same in every language.
            body = self.expected_body(imdb_id, append)
            if body is not None:
                return 200, body
        return 404, _error_body(34)

    def _change_list(self, request: web.Request) -> tuple[int, bytes]:
        """``/movie/changes``: a page of the ids changed from ``start_date`` to ``end_date``."""
        query, today = request.query, self.today
        try:
            page = int(query.get("page", "1"))
        except ValueError:
            page = 0
        if not 1 <= page <= 500:
            return 400, _error_body(22)
        try:
            end = dt.date.fromisoformat(query["end_date"]) if "end_date" in query else today
            start = (
                dt.date.fromisoformat(query["start_date"])
                if "start_date" in query
                else end - dt.timedelta(days=1)
            )
        except ValueError:
            return 422, _error_body(5)
        history = self._history or changes.ChangeHistory(frozenset(), self.config.seed)
        try:
            answer = history.page(start, end, page, today)
        except changes.RangeRefused as exc:
            return 422, _error_body(5, f"Invalid date range: {exc}.")
        return 200, orjson.dumps(answer)

    async def _truncated(
        self, request: web.Request, status: int, body: bytes
    ) -> web.StreamResponse:
        """Promise the whole body in Content-Length, send half of it, then hang up."""
        self.stats.by_status[status] += 1
        response = web.StreamResponse(status=status)
        response.content_type = "application/json"
        response.charset = "utf-8"
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        if request.transport is not None:
            # close(), not abort(): the half already written must reach the client.
            request.transport.close()
        return response


class EmulatorThread:
    """An :class:`Emulator` served from a background thread with its own event loop.

    For synchronous code: ``with EmulatorThread(config) as emu: ... emu.url ...``. On exit
    (also when the body raises) the server stops and the thread is joined. ``stats`` is
    the live object the server thread updates.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self._emulator = Emulator(config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def config(self) -> EmulatorConfig:
        """The emulator's current configuration (its date moves with :meth:`set_today`)."""
        return self._emulator.config

    @property
    def emulator(self) -> Emulator:
        """The emulator being served (touch it only from the server thread)."""
        return self._emulator

    @property
    def url(self) -> str:
        """The API base URL, like ``http://127.0.0.1:PORT/3``."""
        return self._emulator.url

    @property
    def port(self) -> int:
        """The TCP port served on."""
        return self._emulator.port

    @property
    def stats(self) -> EmulatorStats:
        """The live counters (see :class:`EmulatorStats`)."""
        return self._emulator.stats

    def is_missing(self, imdb_id: str) -> bool:
        """True when ``/movie/{imdb_id}`` answers 404 (code 34), faults aside."""
        return self._emulator.is_missing(imdb_id)

    def expected_body(self, imdb_id: str, append: Iterable[str] = ()) -> bytes | None:
        """The exact bytes of the 200 body for ``imdb_id``, or None when it is missing."""
        return self._emulator.expected_body(imdb_id, append)

    def reset_stats(self) -> None:
        """Start counting afresh."""
        self._emulator.reset_stats()

    @property
    def today(self) -> dt.date:
        """The emulator's date (see :meth:`Emulator.set_today`)."""
        return self._emulator.today

    def set_today(self, day: dt.date | None) -> None:
        """Move the emulator's date (one attribute replaced: safe from any thread)."""
        self._emulator.set_today(day)

    def start(self) -> None:
        """Start the thread and return once the server listens; re-raise a startup error."""
        if self._thread is not None:
            raise RuntimeError("emulator thread already started")
        self._thread = threading.Thread(target=self._run, name="tmdb-emulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        """Stop the server and join the thread; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if self._ready.is_set():
                raise
            self._error = exc  # start() re-raises it in the starting thread
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await self._emulator.start()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._emulator.stop()
