"""Write synthetic ``movies.csv`` files in the real file's exact schema, with its traps.

The output is deterministic for a given ``movies`` and ``seed`` (same bytes every time),
so tests and benchmarks can rely on it. It reproduces what makes the real file hard to
read, not its content:

- ``|`` delimited, no quoting: titles hold ``,`` (``Crouching Tiger, Hidden Dragon``) and
  characters hold ``"`` (``"Doc" Brown``), so a reader with ``"`` as quote char breaks;
- ``\\N`` for null in any column, ``genero`` and ``numeroVotos`` included;
- one row per artist, 1 to 8 rows per movie (about 4.3 on average, as in the real file),
  the movie-level columns repeated identically in each of a movie's rows;
- 7- and 8-digit ids (``tt0076759``, ``tt10872600``), and a few malformed ones
  (``tt123``, ``nm0000001``, ``tt0076759 ``, ``\\N``) that a selection must skip;
- genre lists of real IMDb genre names, ``Music`` next to ``Musical``; about 6% of the
  movies are ``Sci-Fi`` or ``Fantasy``, a bit less than half of those have more than 1000
  votes, and some movies have exactly 1000 or 1001 votes.

At full size (244,000 movies) the file has about 1.05 million rows and 140 MB, and the
default selection (``Sci-Fi`` or ``Fantasy``, more than 1000 votes) picks about 6,500 ids,
the scale of the real catalogue.

Command line: ``python -m tmdb_ingest.emulator.sample OUT.csv --movies N --seed S``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FULL_SIZE_MOVIES", "HEADER", "GeneratedSample", "generate_movies_csv", "iter_rows"]

HEADER = (
    "id|tituloPincipal|tituloOriginal|anoLancamento|tempoMinutos|genero|notaMedia|numeroVotos"
    "|generoArtista|personagem|nomeArtista|anoNascimento|anoFalecimento|profissao"
    "|titulosMaisConhecidos"
)
"""The real file's header, its typo (``tituloPincipal``) included."""

FULL_SIZE_MOVIES = 244_000
"""Distinct movies in the real catalogue."""

NULL = "\\N"

# IMDb's genre vocabulary; Sci-Fi and Fantasy are drawn separately so their share is known.
_TARGET_GENRES = ("Sci-Fi", "Fantasy")
_OTHER_GENRES = (
    "Action", "Adult", "Adventure", "Animation", "Biography", "Comedy", "Crime",
    "Documentary", "Drama", "Family", "Film-Noir", "Game-Show", "History", "Horror",
    "Music", "Musical", "Mystery", "News", "Reality-TV", "Romance", "Short", "Sport",
    "Talk-Show", "Thriller", "War", "Western",
)  # fmt: skip
_TARGET_SHARE = 0.06  # movies with Sci-Fi or Fantasy, as in the real file
_MALFORMED_SHARE = 0.004
_MALFORMED_IDS = (
    "tt123", "nm0000001", "tt0076759 ", " tt0000042", "tt12345678901", "TT0000043", NULL,
)  # fmt: skip

_WORDS = (
    "Star", "Wars", "Night", "Day", "Return", "Empire", "Dragon", "Tiger", "Love", "War",
    "Space", "Time", "Dark", "Light", "King", "Queen", "Ghost", "Machine", "Dream", "City",
    "Blood", "Moon", "Sun", "River", "Last", "First", "Lost", "Secret", "Future", "Past",
)  # fmt: skip
_TRAP_TITLES = (
    "Crouching Tiger, Hidden Dragon",
    'The "Real" Story',
    "Me, Myself & Irene",
    'Say "Cheese", Please',
    "O Brother, Where Art Thou?",
    "Lock, Stock and Two Smoking Barrels",
)
_FIRST = ("Mark", "Carrie", "Harrison", "Sigourney", "Keanu", "Zhang", "Chow", "Michelle")
_LAST = ("Hamill", "Fisher", "Ford", "Weaver", "Reeves", "Ziyi", "Yun-Fat", "Yeoh", "Lloyd")
_CHARACTERS = (
    '"Doc" Brown', "Luke Skywalker", "Leia, Princess", "Ellen Ripley", "Neo", "Jen Yu",
    "Himself", "Narrator", "Man at Bar", 'Marty "Calvin Klein" McFly', "Soldier #2",
)  # fmt: skip
_ARTIST_GENDERS = ("actor", "actress", "director", "writer", "producer", "composer")
_PROFESSIONS = ("actor", "actress", "director", "writer", "producer", "composer", "editor")


@dataclass(frozen=True, slots=True)
class GeneratedSample:
    """What :func:`generate_movies_csv` wrote: where, how many data rows and movies."""

    path: Path
    rows: int
    movies: int


def _maybe_null(rng: random.Random, value: str, share: float = 0.03) -> str:
    return NULL if rng.random() < share else value


def _movie_id(rng: random.Random, index: int) -> str:
    # Disjoint ranges keep ids unique without a set: 7-digit ids below 10,000,000,
    # 8-digit ones from 10,000,000, both strictly increasing with the movie's index.
    number = index * 40 + rng.randrange(40)
    if rng.random() < 0.15:
        return f"tt{10_000_000 + number:08d}"
    return f"tt{number:07d}"


def _genres(rng: random.Random) -> str:
    if rng.random() < 0.03:
        return NULL
    # Lists, not sets: a set's order depends on the per-process string hash seed.
    picked = rng.sample(_OTHER_GENRES, rng.randint(1, 3))
    if rng.random() < _TARGET_SHARE:
        picked[-1:] = rng.sample(_TARGET_GENRES, rng.choice((1, 1, 1, 2)))
    return ",".join(sorted(picked))  # IMDb lists genres alphabetically


def _votes(rng: random.Random, edge_share: float) -> str:
    roll = rng.random()
    if roll < 0.08:
        return NULL
    if roll < 0.08 + edge_share:
        return "1000"  # exactly at the threshold: not selected ("more than 1000")
    if roll < 0.08 + 2 * edge_share:
        return "1001"
    # Log-uniform between ~3 and ~300,000: a bit less than half above 1000.
    return str(int(10 ** rng.uniform(0.5, 5.5)))


def _title(rng: random.Random) -> str:
    if rng.random() < 0.02:
        return rng.choice(_TRAP_TITLES)
    return " ".join(rng.sample(_WORDS, rng.randint(1, 3)))


def _movie_prefix(rng: random.Random, index: int, malformed: Iterator[str]) -> str:
    """The movie-level columns (id .. numeroVotos) and the ``|`` after them."""
    movie_id = _movie_id(rng, index)
    genres = _genres(rng)
    # Threshold votes are more frequent among Sci-Fi/Fantasy movies, so that even a small
    # sample exercises "strictly more than 1000" on movies the default selection considers.
    targeted = any(g in genres for g in _TARGET_GENRES)
    votes = _votes(rng, 0.03 if targeted else 0.005)
    if rng.random() < _MALFORMED_SHARE:
        movie_id = next(malformed)
        if rng.random() < 0.5:  # make some of them match the default selection
            genres, votes = "Adventure,Sci-Fi", "5000"
    title = _maybe_null(rng, _title(rng), 0.005)
    original = title if rng.random() < 0.8 else _title(rng)
    year = _maybe_null(rng, str(rng.randint(1915, 2024)))
    minutes = _maybe_null(rng, str(rng.randint(60, 200)), 0.1)
    rating = NULL if votes == NULL else f"{rng.randint(10, 99) / 10:.1f}"
    return f"{movie_id}|{title}|{original}|{year}|{minutes}|{genres}|{rating}|{votes}|"


def _artist_pool(rng: random.Random, size: int) -> list[str]:
    """Artist-level columns after ``personagem`` (nomeArtista .. titulosMaisConhecidos).

    The same people recur across movies, as in the real file; drawing from a pool keeps
    the generator fast enough for a full-size file.
    """
    pool = []
    for _ in range(size):
        name = _maybe_null(rng, f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", 0.005)
        born = rng.randint(1900, 2005)
        died = str(rng.randint(born + 20, 2024)) if born < 1960 and rng.random() < 0.5 else NULL
        professions = ",".join(rng.sample(_PROFESSIONS, rng.randint(1, 3)))
        known = ",".join(f"tt{rng.randrange(10_000_000):07d}" for _ in range(rng.randint(1, 3)))
        pool.append(
            f"{name}|{_maybe_null(rng, str(born), 0.2)}|{died}|{_maybe_null(rng, professions)}"
            f"|{_maybe_null(rng, known)}"
        )
    return pool


def iter_rows(movies: int, seed: int) -> Iterator[str]:
    """Yield the data rows (no header, no newline) of a sample with ``movies`` movies."""
    rng = random.Random(seed)
    artists = _artist_pool(rng, 5000)
    # In turn, not at random: even a small sample holds every kind of malformed id.
    malformed = itertools.cycle(_MALFORMED_IDS)
    # Rows per movie, weighted so the mean is ~4.3 (1.05 M rows for 244,000 movies).
    counts = (1, 2, 3, 4, 5, 6, 7, 8)
    weights = (11, 13, 15, 16, 15, 11, 10, 9)
    for index in range(movies):
        prefix = _movie_prefix(rng, index, malformed)
        for _ in range(rng.choices(counts, weights)[0]):
            gender = _maybe_null(rng, rng.choice(_ARTIST_GENDERS), 0.005)
            character = rng.choice(_CHARACTERS) if gender in ("actor", "actress") else NULL
            yield f"{prefix}{gender}|{character}|{rng.choice(artists)}"


def generate_movies_csv(
    path: str | os.PathLike[str], *, movies: int = 2000, seed: int = 0
) -> GeneratedSample:
    """Write a sample ``movies.csv`` with ``movies`` movies to ``path``; return its counts.

    Rows are written in chunks, so a full-size file never sits in memory. The file is
    written to a temporary name next to ``path`` and renamed, so a reader never sees half
    a file.
    """
    if movies < 0:
        raise ValueError(f"movies must be >= 0, got {movies}")
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    rows = 0
    chunk: list[str] = [HEADER]
    with partial.open("w", encoding="utf-8", newline="\n") as out:
        for row in iter_rows(movies, seed):
            chunk.append(row)
            rows += 1
            if len(chunk) >= 20_000:
                out.write("\n".join(chunk) + "\n")
                chunk.clear()
        if chunk:
            out.write("\n".join(chunk) + "\n")
    partial.replace(target)
    return GeneratedSample(path=target, rows=rows, movies=movies)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a sample file; print its counts on stderr."""
    parser = argparse.ArgumentParser(
        prog="python -m tmdb_ingest.emulator.sample",
        description="Write a synthetic movies.csv (the real schema and traps).",
    )
    parser.add_argument("out", type=Path, help="file to write")
    parser.add_argument(
        "--movies", type=int, default=2000, help=f"distinct movies (full size: {FULL_SIZE_MOVIES})"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.movies < 0:
        parser.error("--movies must be >= 0")
    sample = generate_movies_csv(args.out, movies=args.movies, seed=args.seed)
    print(f"{sample.path}: {sample.rows} rows, {sample.movies} movies", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
