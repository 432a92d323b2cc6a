"""Deterministic TMDB movie bodies: the same (IMDb id, seed) always gives the same bytes.

Bodies have exactly the fields and JSON types of TMDB's movie-details response (see
``shared/tmdb/movie-details.json``); titles, overviews and names mix in non-ASCII text
(``Amélie``, ``千と千尋``, ``Ånd``) so that encoding bugs show up. Everything is derived
from a SHA-256 of the inputs, never from Python's salted ``hash()``, so bodies are stable
across processes and machines.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterable
from typing import Any

import orjson

from tmdb_ingest.ids import is_imdb_id

__all__ = [
    "append_objects",
    "is_missing",
    "movie_details",
    "movie_details_bytes",
    "movie_summary",
    "unit_interval",
]


_GENRES = (
    (12, "Adventure"),
    (14, "Fantasy"),
    (16, "Animation"),
    (18, "Drama"),
    (27, "Horror"),
    (28, "Action"),
    (35, "Comedy"),
    (53, "Thriller"),
    (878, "Science Fiction"),
    (9648, "Mystery"),
    (10751, "Family"),
)
# (original_language, original title words, spoken language names, production country)
_LOCALES = (
    (
        "en",
        ("Star", "Galaxy", "Dream", "Machine", "Empire", "Moon"),
        ("English", "English"),
        ("US", "United States of America"),
    ),
    (
        "fr",
        ("Amélie", "Rêve", "Étoile", "Lumière", "Forêt", "Cœur"),
        ("French", "Français"),
        ("FR", "France"),
    ),
    (
        "ja",
        ("千と千尋", "神隠し", "星", "夢", "ロボット", "月"),
        ("Japanese", "日本語"),
        ("JP", "Japan"),
    ),
    (
        "no",
        ("Ånd", "Skygge", "Fjord", "Drøm", "Nordlys", "Isbjørn"),
        ("Norwegian", "Norsk"),
        ("NO", "Norway"),
    ),
    (
        "de",
        ("Traum", "Mädchen", "Straße", "Größe", "Tür", "Übermensch"),
        ("German", "Deutsch"),
        ("DE", "Germany"),
    ),
    (
        "es",
        ("Niño", "Señor", "Corazón", "Sueño", "Mañana", "Año"),
        ("Spanish", "Español"),
        ("ES", "Spain"),
    ),
)
_EN_TITLE_WORDS = ("The", "Last", "Lost", "Dark", "Silent", "Iron", "Hidden", "Crystal")
# Every overview names one of these people, so every body holds non-ASCII text.
_HEROES = ("Amélie", "Søren", "Zoë", "José", "Chloé", "Mikołaj", "千尋", "Ångström", "Björk")
_PLACES = ("a distant galaxy", "Reykjavík", "São Paulo", "Kraków", "Zürich", "東京", "Malmö")
_COMPANIES = (
    (1, "Lucasfilm Ltd.", "US"),
    (25, "20th Century Fox", "US"),
    (10342, "Studio Ghibli", "JP"),
    (104, "Canal+", "FR"),
    (7981, "Pathé", "FR"),
    (8411, "Metro-Goldwyn-Mayer", "US"),
    (11321, "Nordisk Film", "DK"),
    (6194, "Warner Bros. Pictures", "US"),
    (37, "Constantin Film", "DE"),
    (11111, "Estudios Picasso", "ES"),
)
_STATUSES = ("Released", "Released", "Released", "Released", "Post Production")
_TAGLINES = (
    "A long time ago in a galaxy far, far away...",
    "Rien n'est impossible — même l'été.",
    "夢は終わらない。",
    "",
)
_PATH_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _digest(seed: int, purpose: str, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\x1f{purpose}\x1f{key}".encode()).digest()


def unit_interval(seed: int, purpose: str, key: str) -> float:
    """A number in the open interval (0, 1), fixed by (seed, purpose, key)."""
    n = int.from_bytes(_digest(seed, purpose, key)[:8], "big")
    # Shift by half a step so that 0.0 never comes out (inverse normal CDFs reject it).
    return (n + 0.5) / 2.0**64


def is_missing(imdb_id: str, seed: int, missing_rate: float) -> bool:
    """True when TMDB (as emulated) has no movie for ``imdb_id``: fixed per (id, seed).

    Malformed ids are always missing; otherwise a ``missing_rate`` share of ids is.
    """
    if not is_imdb_id(imdb_id):
        return True
    return unit_interval(seed, "missing", imdb_id) < missing_rate


def _rng(imdb_id: str, seed: int) -> random.Random:
    return random.Random(int.from_bytes(_digest(seed, "body", imdb_id), "big"))


def _image_path(rng: random.Random, ext: str = "jpg") -> str:
    return "/" + "".join(rng.choices(_PATH_ALPHABET, k=27)) + "." + ext


def tmdb_id(imdb_id: str) -> int:
    """The TMDB id of a well-formed IMDb id: its number, so distinct ids never collide."""
    return int(imdb_id[2:])


def movie_details(imdb_id: str, seed: int = 0) -> dict[str, Any]:
    """The movie-details object TMDB would return for ``imdb_id``, fixed per (id, seed).

    Same keys, in the same order and with the same JSON types, as TMDB's movie-details
    example; ``imdb_id`` is the id asked for and ``id`` is :func:`tmdb_id`. Raises
    ``ValueError`` for a malformed id (TMDB has no movie for it).
    """
    if not is_imdb_id(imdb_id):
        raise ValueError(f"not an IMDb title id (tt and 7 to 10 digits): {imdb_id!r}")
    rng = _rng(imdb_id, seed)
    language, words, (english_name, native_name), country = rng.choice(_LOCALES)
    original_title = " ".join(rng.sample(words, k=rng.randint(1, 3)))
    title = (
        original_title if language == "en" else f"{rng.choice(_EN_TITLE_WORDS)} {original_title}"
    )
    hero, place = rng.choice(_HEROES), rng.choice(_PLACES)
    overview = (
        f"{hero} leaves {place} to find {rng.choice(words)}, and finds that the "
        f"{rng.choice(('war', 'journey', 'dream', 'machine'))} was never what it seemed."
    )
    genres = sorted(rng.sample(_GENRES, k=rng.randint(1, 3)))
    companies = rng.sample(_COMPANIES, k=rng.randint(0, 3))
    collection: dict[str, Any] | None = None
    if rng.random() < 0.3:
        collection = {
            "id": rng.randint(10, 1_000_000),
            "name": f"{original_title} Collection",
            "poster_path": _image_path(rng),
            "backdrop_path": _image_path(rng),
        }
    budget = rng.choice((0, rng.randint(1, 300) * 1_000_000))
    released = rng.random() < 0.95
    year = rng.randint(1920, 2025)
    return {
        "adult": False,
        "backdrop_path": _image_path(rng),
        "belongs_to_collection": collection,
        "budget": budget,
        "genres": [{"id": gid, "name": name} for gid, name in genres],
        "homepage": rng.choice(("", f"https://example.org/films/{imdb_id}")),
        "id": tmdb_id(imdb_id),
        "imdb_id": imdb_id,
        "origin_country": [country[0]],
        "original_language": language,
        "original_title": original_title,
        "overview": overview,
        "popularity": round(rng.uniform(0.5, 250.0), 4),
        "poster_path": _image_path(rng),
        "production_companies": [
            {"id": cid, "logo_path": _image_path(rng, "png"), "name": name, "origin_country": cc}
            for cid, name, cc in companies
        ],
        "production_countries": [{"iso_3166_1": country[0], "name": country[1]}],
        "release_date": f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "revenue": rng.randint(0, 40) * budget // 10 if released else 0,
        "runtime": rng.randint(70, 200),
        "spoken_languages": [
            {"english_name": english_name, "iso_639_1": language, "name": native_name}
        ],
        "status": _STATUSES[-1] if not released else rng.choice(_STATUSES[:-1]),
        "tagline": rng.choice(_TAGLINES),
        "title": title,
        "video": False,
        "vote_average": round(rng.uniform(1.0, 9.5), 3),
        "vote_count": rng.randint(0, 40_000),
    }


def movie_summary(imdb_id: str, seed: int = 0) -> dict[str, Any]:
    """The short form of :func:`movie_details` that the find endpoint lists."""
    d = movie_details(imdb_id, seed)
    return {
        "adult": d["adult"],
        "backdrop_path": d["backdrop_path"],
        "id": d["id"],
        "title": d["title"],
        "original_language": d["original_language"],
        "original_title": d["original_title"],
        "overview": d["overview"],
        "poster_path": d["poster_path"],
        "media_type": "movie",
        "genre_ids": [g["id"] for g in d["genres"]],
        "popularity": d["popularity"],
        "release_date": d["release_date"],
        "video": d["video"],
        "vote_average": d["vote_average"],
        "vote_count": d["vote_count"],
    }


def append_objects(imdb_id: str, seed: int, append: Iterable[str]) -> dict[str, Any]:
    """The extra top-level objects ``append_to_response`` adds, by name.

    Known names get a small valid object; unknown names are ignored, as TMDB does.
    """
    movie_id = tmdb_id(imdb_id)
    extras: dict[str, Any] = {}
    for name in append:
        if name == "credits":
            rng = random.Random(int.from_bytes(_digest(seed, "credits", imdb_id), "big"))
            extras["credits"] = {
                "id": movie_id,
                "cast": [
                    {
                        "adult": False,
                        "gender": rng.randint(0, 2),
                        "id": rng.randint(1, 5_000_000),
                        "known_for_department": "Acting",
                        "name": hero,
                        "original_name": hero,
                        "popularity": round(rng.uniform(0.5, 50.0), 3),
                        "profile_path": _image_path(rng),
                        "cast_id": i,
                        "character": f"{hero} (voice)" if i == 2 else hero,
                        "credit_id": "".join(rng.choices("0123456789abcdef", k=24)),
                        "order": i,
                    }
                    for i, hero in enumerate(rng.sample(_HEROES, k=3))
                ],
                "crew": [],
            }
        elif name == "external_ids":
            extras["external_ids"] = {
                "id": movie_id,
                "imdb_id": imdb_id,
                "wikidata_id": None,
                "facebook_id": None,
                "instagram_id": None,
                "twitter_id": None,
            }
        elif name in ("videos", "release_dates", "lists", "recommendations", "similar"):
            extras[name] = {"id": movie_id, "results": []}
        elif name == "translations":
            extras["translations"] = {"id": movie_id, "translations": []}
        elif name == "images":
            extras["images"] = {"id": movie_id, "backdrops": [], "logos": [], "posters": []}
        elif name == "keywords":
            extras["keywords"] = {"id": movie_id, "keywords": []}
    return extras


@functools.lru_cache(maxsize=4096)
def _details_bytes(imdb_id: str, seed: int, append: tuple[str, ...]) -> bytes:
    body = movie_details(imdb_id, seed)
    body.update(append_objects(imdb_id, seed, append))
    return orjson.dumps(body)


def movie_details_bytes(imdb_id: str, seed: int = 0, append: Iterable[str] = ()) -> bytes:
    """The exact 200 body bytes for ``imdb_id``: :func:`movie_details` as compact UTF-8 JSON.

    ``append`` names ``append_to_response`` parts to add (see :func:`append_objects`).
    The same arguments always give byte-identical output.
    """
    return _details_bytes(imdb_id, seed, tuple(append))
