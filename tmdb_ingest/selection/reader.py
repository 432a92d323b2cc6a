"""Select IMDb ids from ``movies.csv``: genre and vote filter, unique, sorted, validated.

The file (design.md, "Input: movies.csv") is ``|`` delimited with no quoting, ``\\N`` for
null, one row per artist (a movie's columns repeat in each of its rows). It is looked at
first (:mod:`.preflight`: delimiter, header, encoding), then scanned by polars in pieces
(:mod:`.scan`); an ``s3://`` source is downloaded first (:mod:`.source`). polars is
imported on first use, so that code which only needs a saved selection does not pay for it.

Rules:

- a movie is selected when ``genero`` (a comma-separated list) holds one of ``genres`` as
  a whole name (``Music`` does not match ``Musical``) and ``numeroVotos`` is strictly
  greater than ``votes_above``; a null or non-numeric vote count never matches;
- ``genres`` are IMDb's names (:data:`~tmdb_ingest.config.values.IMDB_GENRES`), in any
  case; an unknown one is a :class:`~tmdb_ingest.errors.ConfigError` naming the closest;
- only ids shaped like ``tt`` and 7 to 10 digits are returned, so a malformed id can never
  reach a URL; the distinct malformed ids among the matching rows (an empty or null id
  counts as one) are counted in :attr:`Selection.invalid_ids`;
- rows with too many fields are truncated to the header's width and rows with too few
  get nulls for the missing columns (so they do not match); one bad row never fails the
  whole file, and since ``id`` is the first column it is never shifted;
- a UTF-8 byte-order mark and CRLF line endings are accepted; blank lines are not rows;
- a selection of no ids is an :class:`~tmdb_ingest.errors.InputError` saying what was
  asked and what the file holds (its genres, its range of votes): a filter that selects
  nothing is a mistake to report, not a run to make.

Every problem with the file itself is an :class:`~tmdb_ingest.errors.InputError` with a
one-line message naming the file, raised before any request: not found, empty, header
only, wrong delimiter, missing columns, not UTF-8 text; for ``s3://`` sources also a
missing bucket or key, or access denied.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tmdb_ingest.config.options import DEFAULT_GENRES, DEFAULT_VOTES_ABOVE, OPTION
from tmdb_ingest.config.values import ANY_GENRE, genre_names
from tmdb_ingest.errors import InputError
from tmdb_ingest.ids import IMDB_ID_PATTERN, is_imdb_id
from tmdb_ingest.s3 import is_s3_uri
from tmdb_ingest.selection.preflight import REQUIRED_COLUMNS, preflight
from tmdb_ingest.selection.source import downloaded

__all__ = [
    "DEFAULT_GENRES",
    "DEFAULT_VOTES_ABOVE",
    "IMDB_ID_PATTERN",
    "REQUIRED_COLUMNS",
    "Selection",
    "read_ids_file",
    "select_ids",
    "select_ids_async",
]


@dataclass(frozen=True)
class Selection:
    """The ids a catalogue selects, and what was read to find them."""

    ids: list[str]
    """Unique, sorted, valid (``tt`` and 7 to 10 digits) IMDb ids."""
    rows: int
    """Data rows read in the file (the header and blank lines not counted)."""
    invalid_ids: int
    """Distinct malformed ids among the rows that matched the filter (skipped)."""
    source: str
    """The path or ``s3://`` URI the ids were read from."""


def _check_votes(votes_above: int) -> int:
    checked: int = OPTION["votes_above"].check("votes_above", votes_above)
    return checked


def _select_local(path: Path, name: str, genres: Sequence[str], votes_above: int) -> Selection:
    from tmdb_ingest.selection.scan import scan

    preflight(path, name)
    rows, matched = scan(path, name, genres, votes_above)
    valid = sorted(i for i in matched if i is not None and is_imdb_id(i))
    if not valid:
        raise InputError(_nothing_selected(path, name, genres, votes_above, rows, len(matched)))
    return Selection(ids=valid, rows=rows, invalid_ids=len(matched) - len(valid), source=name)


def _nothing_selected(
    path: Path, name: str, genres: Sequence[str], votes_above: int, rows: int, malformed: int
) -> str:
    """What was asked and what the file holds, for a selection of no ids."""
    from tmdb_ingest.selection.scan import holdings

    asked = "any genre" if ANY_GENRE in genres else "genres " + ",".join(genres)
    asked += " with any votes" if votes_above < 0 else f" with more than {votes_above} votes"
    bad = f" ({malformed} matching rows had malformed ids)" if malformed else ""
    return f"{name}: no movie matches {asked}{bad}; its {rows} rows hold {holdings(path, name)}"


async def _select_s3(
    uri: str, genres: Sequence[str], votes_above: int, endpoint_url: str | None
) -> Selection:
    async with downloaded(uri, endpoint_url) as copy:
        return await asyncio.to_thread(_select_local, copy, uri, genres, votes_above)


# --------------------------------------------------------------------------- public API


def select_ids(
    source: str | os.PathLike[str],
    *,
    genres: Sequence[str] = DEFAULT_GENRES,
    votes_above: int = DEFAULT_VOTES_ABOVE,
    s3_endpoint_url: str | None = None,
) -> Selection:
    """Return the unique, sorted, valid ids of the movies in ``source`` that match.

    ``source`` is a local path or ``s3://bucket/key`` (downloaded with aiobotocore to a
    temporary file, deleted afterwards). A movie matches when its ``genero`` holds one of
    ``genres`` as a whole name and it has strictly more than ``votes_above`` votes.
    Raises :class:`~tmdb_ingest.errors.InputError` for an unusable file or a selection
    of no ids, and :class:`~tmdb_ingest.errors.ConfigError` for bad arguments (an
    unknown genre). Inside a running event
    loop, use :func:`select_ids_async` for ``s3://`` sources.
    """
    names = genre_names(genres)
    votes = _check_votes(votes_above)
    text = os.fspath(source)
    if not is_s3_uri(text):
        return _select_local(Path(text), text, names, votes)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_select_s3(text, names, votes, s3_endpoint_url))
    raise RuntimeError(
        "select_ids() cannot download from S3 inside an event loop; await select_ids_async()"
    )


async def select_ids_async(
    source: str | os.PathLike[str],
    *,
    genres: Sequence[str] = DEFAULT_GENRES,
    votes_above: int = DEFAULT_VOTES_ABOVE,
    s3_endpoint_url: str | None = None,
) -> Selection:
    """Like :func:`select_ids`, for callers inside an event loop (the Lambda handler).

    The S3 download runs on the loop; the polars scan runs in a worker thread, so the
    loop stays responsive.
    """
    names = genre_names(genres)
    votes = _check_votes(votes_above)
    text = os.fspath(source)
    if is_s3_uri(text):
        return await _select_s3(text, names, votes, s3_endpoint_url)
    return await asyncio.to_thread(_select_local, Path(text), text, names, votes)


def read_ids_file(path: str | os.PathLike[str]) -> list[str]:
    """Read one IMDb id per line; return them unique and sorted.

    Blank lines and lines starting with ``#`` are skipped; surrounding whitespace is
    ignored. Any other line that is not a valid id raises ``InputError`` naming the line.
    """
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{name}: file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{name}: not a UTF-8 text file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if not is_imdb_id(item):
            raise InputError(f"{name}:{number}: not an IMDb id (tt and 7 to 10 digits): {item!r}")
        ids.add(item)
    if not ids:
        raise InputError(f"{name}: no ids in the file")
    return sorted(ids)
