"""What became of one id, and what one TMDB answer means.

:class:`FetchResult` is the result of asking TMDB for one id: its :class:`Outcome`, the
raw 200 body, the last reason and the attempts. :func:`classify` reads one answer (other
than a 429, which the client hands to its limiter): a 200 whose body is a JSON object is
``fetched`` (kept byte for byte), a 404 with TMDB's body (``status_code`` 34) is
``not_found``; a 401 raises :class:`~tmdb_ingest.errors.AuthError`; 5xx, 408, foreign
404s (an HTML page from a proxy or a wrong URL) and bad 200 bodies raise
:class:`Retryable`; any other status raises :class:`Final`.

Reasons are built from status codes, TMDB's ``status_code`` and exception type names
only, never from URLs or bodies, so they hold no secret.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import orjson

from tmdb_ingest.errors import AuthError

__all__ = [
    "FetchResult",
    "Final",
    "Outcome",
    "Retryable",
    "classify",
    "retry_after",
    "stated_limit",
    "tmdb_code",
]

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


class Retryable(Exception):
    """An answer worth trying again (429, 5xx, timeout, reset, bad body, foreign 404)."""

    def __init__(self, reason: str, *, throttled: bool = False, foreign: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.throttled = throttled  # a 429: the limiter, not the backoff, does the waiting
        self.foreign = foreign  # nothing shows that TMDB answered (refused, timeout, HTML 404)


class Final(Exception):
    """An answer not worth trying again that is not a 404 (e.g. 400, 403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (0 to 120), or None when absent or a date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from TMDB; fall back to backoff
    return min(max(seconds, 0.0), 120.0)


def tmdb_code(body: bytes) -> int | None:
    """TMDB's ``status_code`` in an error body, or None when the body is not TMDB's."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    code = data.get("status_code") if isinstance(data, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


_STATED_LIMIT = re.compile(rb"allowed limit of \((\d+(?:\.\d+)?)\)")


def stated_limit(body: bytes) -> float | None:
    """The limit a TMDB 429 body states (code 25: "Your request count (41) is over the
    allowed limit of (40)."), or None when it states none."""
    if tmdb_code(body) != 25:
        return None
    match = _STATED_LIMIT.search(body[:1000])
    return float(match.group(1)) if match else None


def throttled(body: bytes) -> Retryable:
    """What a 429 with ``body`` is: retryable, by the limiter's wait."""
    code = tmdb_code(body)
    return Retryable(f"HTTP 429{_suffix(code)}", throttled=True)


def classify(imdb_id: str, status: int, body: bytes) -> FetchResult:
    """The result of an answer that is not a 429; raise what is not a result (see above)."""
    if status == 200:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Retryable("HTTP 200 with a body that is not JSON") from None
        if not isinstance(data, dict):
            raise Retryable("HTTP 200 with a body that is not a JSON object")
        return FetchResult(imdb_id, Outcome.FETCHED, body=body)
    code = tmdb_code(body)
    suffix = _suffix(code)
    if status == 404:
        if code == 34:
            return FetchResult(imdb_id, Outcome.NOT_FOUND, reason=f"HTTP 404{suffix}")
        raise Retryable(f"HTTP 404 that is not TMDB's{suffix}", foreign=code is None)
    if status == 401:
        raise AuthError(
            code, _AUTH_MESSAGES.get(code or 7, f"TMDB rejected the credentials (HTTP 401{suffix})")
        )
    if status >= 500 or status == 408:
        raise Retryable(f"HTTP {status}{suffix}")
    raise Final(f"HTTP {status}{suffix}")


def _suffix(code: int | None) -> str:
    return f" (status_code {code})" if code is not None else ""
