"""TMDB's change list: the TMDB ids of the movies changed from one day to another.

``GET /movie/changes?start_date=..&end_date=..&page=N`` is read in windows of at most 14
days (TMDB answers 422 beyond that), every page of each (100 ids a page), through the
same client as the movies: the same limiter (the change list counts against the rate),
the same retries with backoff for 5xx and timeouts, the same 429 handling. A 401 is
fatal, as for a movie. A window TMDB refuses (422) is a fatal error naming the window,
never retried. Page 1 of a window says how many pages it has; the others are asked for
at once, so reading a day of TMDB-sized changes (about 50 pages) takes about as long as
the rate allows, not 50 round trips.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from tmdb_ingest.errors import FatalError
from tmdb_ingest.fetch.client import FetchResult, Outcome, TmdbClient

__all__ = ["MAX_PAGES", "WINDOW_DAYS", "ChangeList", "ChangeListClient", "read_changes", "windows"]

log = logging.getLogger("tmdb_ingest")

WINDOW_DAYS = 14
"""Days in one request's range at most (start and end both included: end - start = 13)."""
MAX_PAGES = 500
"""TMDB serves pages 1 to 500 of a list: a window with more is read as two halves."""


class ChangeListRefused(FatalError):
    """TMDB refused a window of the change list (422), or answered it in a wrong shape."""


class ChangeListStopped(Exception):
    """The time budget or a stop came before the change list was read."""


@dataclass
class ChangeList:
    """What the change list said: the TMDB ids changed, and how many pages that took."""

    ids: set[int] = field(default_factory=set)
    pages: int = 0


def windows(
    since: dt.date, until: dt.date, days: int | None = None
) -> Iterator[tuple[dt.date, dt.date]]:
    """``since``..``until`` (both included) cut into ranges of at most ``days`` days
    (default :data:`WINDOW_DAYS`)."""
    days = days or WINDOW_DAYS
    start = since
    while start <= until:
        end = min(start + dt.timedelta(days=days - 1), until)
        yield start, end
        start = end + dt.timedelta(days=1)


class ChangeListClient(TmdbClient):
    """The movie client, asking for change-list pages: its ``fetch`` takes a page's query.

    Everything else (limiter, retries, 429, 401, secrets kept out of reasons) is the
    movie client's own. Make it without ``language`` or ``append_to_response``.
    """

    def url_for(self, imdb_id: str) -> str:
        # The "id" of a change-list request is its query: start_date, end_date, page.
        return f"{self.base_url}/movie/changes?{imdb_id}"


def _query(start: dt.date, end: dt.date, page: int) -> str:
    return urlencode(
        {"start_date": start.isoformat(), "end_date": end.isoformat(), "page": str(page)}
    )


async def read_changes(
    client: ChangeListClient,
    since: dt.date,
    until: dt.date,
    *,
    retry_until: float | None = None,
) -> ChangeList:
    """Every TMDB id the change list names from ``since`` to ``until`` (both included).

    Raises :class:`ChangeListRefused` (fatal) when TMDB refuses a window or its answer is
    not a change list, :class:`~tmdb_ingest.errors.FatalError` when a page still fails
    after the retries, :class:`~tmdb_ingest.errors.AuthError` on 401, and
    :class:`ChangeListStopped` when ``retry_until`` (the loop's clock) comes first.
    """
    found = ChangeList()
    todo = list(windows(since, until))
    while todo:
        start, end = todo.pop(0)
        first = await _page(client, start, end, 1, retry_until)
        found.pages += 1
        total = first["total_pages"]
        if total > MAX_PAGES and start < end:
            middle = start + (end - start) // 2
            log.info("change list %s..%s has %d pages: read as two halves", start, end, total)
            todo[:0] = [(start, middle), (middle + dt.timedelta(days=1), end)]
            continue
        found.ids.update(_ids(first))
        rest = await asyncio.gather(
            *(
                _page(client, start, end, n, retry_until)
                for n in range(2, min(total, MAX_PAGES) + 1)
            )
        )
        found.pages += len(rest)
        for answer in rest:
            found.ids.update(_ids(answer))
        log.info(
            "change list %s..%s: %d pages, %d ids so far", start, end, 1 + len(rest), len(found.ids)
        )
    return found


def _ids(answer: dict[str, Any]) -> Iterator[int]:
    for item in answer["results"]:
        movie_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(movie_id, int) and not isinstance(movie_id, bool):
            yield movie_id


async def _page(
    client: ChangeListClient, start: dt.date, end: dt.date, page: int, retry_until: float | None
) -> dict[str, Any]:
    window = f"{start}..{end}"
    result: FetchResult = await client.fetch(_query(start, end, page), retry_until=retry_until)
    if result.outcome is Outcome.UNRESOLVED:
        raise ChangeListStopped(window)
    if result.outcome is Outcome.FAILED:
        reason = result.reason or "failed"
        if reason.startswith("HTTP 422"):
            raise ChangeListRefused(
                f"TMDB refused the change list for {window} ({reason}): it lists at most "
                f"{WINDOW_DAYS} days at once and no day in the future; check --since and --until"
            )
        raise FatalError(
            f"the change list for {window} (page {page}) could not be read: {reason} "
            f"({result.attempts} attempts); the bookmark is unchanged, run again"
        )
    if result.outcome is Outcome.NOT_FOUND:
        raise ChangeListRefused(
            f"the change list for {window} answered 404: is --tmdb-url TMDB's API root?"
        )
    assert result.body is not None
    answer = orjson.loads(result.body)
    if not isinstance(answer.get("results"), list) or not isinstance(
        answer.get("total_pages"), int
    ):
        raise ChangeListRefused(f"the change list for {window} is not in TMDB's shape")
    return dict(answer)
