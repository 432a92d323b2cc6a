"""The emulator's history of changes: which movies TMDB changed on which day, and how.

A movie of the ``catalogue`` (IMDb ids) changes on a day ``d`` (from :data:`HISTORY_START`
on) when a hash of (seed, id, d) falls below ``rate``; nothing else ever changes. So the
history is fixed by (seed, catalogue, rate), the same in every process, and needs no
state: the body of a movie on a date is its base body (:mod:`tmdb_ingest.emulator.bodies`)
with the values of its latest change up to that date (``vote_count``, ``vote_average``,
``popularity``, ``revenue``), and ``GET /movie/changes`` lists the TMDB ids changed on the
days asked, as TMDB does: ``results`` of ``{id, adult}``, 100 a page, ``page``,
``total_pages``, ``total_results``; a range of more than 14 days is 422.

TMDB's list also names movies the lake does not hold (new ones, adult ones, other
catalogues): for every catalogue change of a day the list has ``others`` such ids, all
above any id of the sample files, so that with ``others=3`` a quarter of a day's list is
in a lake of the whole catalogue, as in TMDB's own answer.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import orjson

from tmdb_ingest.emulator.bodies import append_objects, movie_details, tmdb_id, unit_interval

__all__ = [
    "HISTORY_START",
    "MAX_RANGE_DAYS",
    "PAGE_SIZE",
    "ChangeHistory",
    "RangeRefused",
    "apply_change",
    "changed_bytes",
]

HISTORY_START = dt.date(2026, 1, 1)
"""The first day anything changes: bodies as of an earlier date are the base bodies."""
MAX_RANGE_DAYS = 14
"""The longest range TMDB lists at once: ``end_date - start_date`` of at most 14 days."""
PAGE_SIZE = 100
# Sample ids are below 20,000,000 (7-digit below 10 M, 8-digit from 10 M + index * 40):
# the ids of movies outside the catalogue start above them.
_OTHERS_BASE = 20_000_000
_OTHERS_SPAN = 10_000_000


class RangeRefused(ValueError):
    """A range TMDB refuses (422): too long, reversed, or not dates."""


@dataclass(frozen=True)
class ChangeHistory:
    """Who changed when: fixed by ``seed``, ``catalogue`` and ``rate`` (see the module)."""

    catalogue: frozenset[str]
    seed: int = 0
    rate: float = 0.0051  # about TMDB's 1,250 of a 244,000-movie catalogue a day
    others: float = 3.0
    removal_rate: float = 0.0  # share of changes that remove the movie (404 from then on)

    def changed_on(self, imdb_id: str, day: dt.date) -> bool:
        """True when ``imdb_id`` changed on ``day``."""
        if day < HISTORY_START:
            return False
        base = _bases(self.catalogue, self.seed).get(imdb_id)
        return base is not None and _mix(base, day.toordinal()) < self.rate * _TWO_64

    def last_change(self, imdb_id: str, today: dt.date) -> dt.date | None:
        """The latest day up to ``today`` on which ``imdb_id`` changed, or None."""
        if imdb_id not in self.catalogue or self.rate <= 0:
            return None
        day = today
        while day >= HISTORY_START:
            if self.changed_on(imdb_id, day):
                return day
            day -= dt.timedelta(days=1)
        return None

    def removed_by(self, imdb_id: str, today: dt.date) -> bool:
        """True when a change up to ``today`` removed ``imdb_id`` (TMDB answers 404)."""
        if self.removal_rate <= 0 or imdb_id not in self.catalogue:
            return False
        day = HISTORY_START
        while day <= today:
            if self.changed_on(imdb_id, day) and (
                unit_interval(self.seed, "removed", f"{imdb_id}:{day.isoformat()}")
                < self.removal_rate
            ):
                return True
            day += dt.timedelta(days=1)
        return False

    def body(self, imdb_id: str, today: dt.date, seed: int) -> dict[str, Any]:
        """The movie-details object of ``imdb_id`` as TMDB serves it on ``today``."""
        body = movie_details(imdb_id, seed)
        last = self.last_change(imdb_id, today)
        return body if last is None else apply_change(body, imdb_id, last, seed)

    def changed_ids(self, day: dt.date) -> list[tuple[int, bool | None]]:
        """The (TMDB id, adult) pairs the list names for ``day``, in TMDB's order."""
        return _day_list(self, day)

    def page(self, start: dt.date, end: dt.date, page: int, today: dt.date) -> dict[str, Any]:
        """The change list's page ``page`` for the days ``start``..``end`` (both included).

        Days after ``today`` have no changes yet; an id changed on several days is listed
        once. Raises :class:`RangeRefused` for a reversed range or one of over 14 days.
        """
        if end < start:
            raise RangeRefused("end_date is before start_date")
        if (end - start).days > MAX_RANGE_DAYS:
            raise RangeRefused(f"a range of at most {MAX_RANGE_DAYS} days")
        seen: set[int] = set()
        listed: list[tuple[int, bool | None]] = []
        day = start
        while day <= min(end, today):
            for movie_id, adult in self.changed_ids(day):
                if movie_id not in seen:
                    seen.add(movie_id)
                    listed.append((movie_id, adult))
            day += dt.timedelta(days=1)
        first = (page - 1) * PAGE_SIZE
        results = [{"id": i, "adult": a} for i, a in listed[first : first + PAGE_SIZE]]
        return {
            "results": results,
            "page": page,
            "total_pages": math.ceil(len(listed) / PAGE_SIZE),
            "total_results": len(listed),
        }


_TWO_64 = float(2**64)
_MASK = 2**64 - 1


@functools.lru_cache(maxsize=4)
def _bases(catalogue: frozenset[str], seed: int) -> dict[str, int]:
    """A 64-bit hash per movie of the catalogue, once: a day's decision mixes it with the
    day (SHA-256 per movie and day would take seconds a day for a whole catalogue)."""
    return {
        i: int.from_bytes(hashlib.sha256(f"{seed}\x1fchange\x1f{i}".encode()).digest()[:8], "big")
        for i in catalogue
    }


def _mix(base: int, day: int) -> int:
    """splitmix64's finaliser over (base, day): uniform 64-bit values, the same everywhere."""
    z = (base + day * 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=64)
def _day_list(history: ChangeHistory, day: dt.date) -> list[tuple[int, bool | None]]:
    # One pass over the catalogue per day (cached): for 244,000 movies about 0.2 s.
    ordinal, limit = day.toordinal(), history.rate * _TWO_64
    bases = _bases(history.catalogue, history.seed)
    ours = sorted(
        tmdb_id(i) for i, b in bases.items() if day >= HISTORY_START and _mix(b, ordinal) < limit
    )
    n_others = round(history.others * len(ours))
    stamp = day.isoformat()
    others: list[tuple[int, bool | None]] = []
    for k in range(n_others):
        u = unit_interval(history.seed, "other-change", f"{stamp}:{k}")
        roll = unit_interval(history.seed, "other-adult", f"{stamp}:{k}")
        adult: bool | None = True if roll < 0.05 else (None if roll < 0.08 else False)
        others.append((_OTHERS_BASE + int(u * _OTHERS_SPAN), adult))
    listed: list[tuple[int, bool | None]] = [(i, False) for i in ours] + others
    # TMDB lists a day in no order a reader can use: interleave ours and the others.
    listed.sort(key=lambda item: unit_interval(history.seed, "order", f"{stamp}:{item[0]}"))
    return listed


def apply_change(body: dict[str, Any], imdb_id: str, day: dt.date, seed: int) -> dict[str, Any]:
    """``body`` with the values its movie has after its change of ``day``.

    Votes and revenue grow with the days since :data:`HISTORY_START`; popularity and the
    average move to a value drawn for that day. Keys, order and JSON types stay TMDB's.
    """
    days = (day - HISTORY_START).days + 1
    growth = 1 + int(unit_interval(seed, "growth", imdb_id) * 40)
    stamp = f"{imdb_id}:{day.isoformat()}"
    changed = dict(body)
    changed["vote_count"] = int(body["vote_count"]) + days * growth
    drift = (unit_interval(seed, "vote-drift", stamp) - 0.5) * 0.4
    changed["vote_average"] = round(min(10.0, max(0.0, float(body["vote_average"]) + drift)), 3)
    changed["popularity"] = round(0.5 + 249.5 * unit_interval(seed, "popularity", stamp), 4)
    if body["status"] == "Released" and int(body["budget"]) > 0:
        changed["revenue"] = int(body["revenue"]) + days * (int(body["budget"]) // 1000)
    return changed


@functools.lru_cache(maxsize=4096)
def changed_bytes(imdb_id: str, seed: int, day: dt.date, append: tuple[str, ...]) -> bytes:
    """The exact 200 body of ``imdb_id`` after its change of ``day``, with ``append``."""
    body = apply_change(movie_details(imdb_id, seed), imdb_id, day, seed)
    body.update(append_objects(imdb_id, seed, append))
    return orjson.dumps(body)
