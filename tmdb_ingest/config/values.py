"""The value types of the settings, each checking itself when it is made.

- :class:`Secret`: a credential that ``repr`` and ``str`` never show;
- :class:`Shard`: shard ``I`` of ``N``;
- :class:`Rate`: a fixed pace, or ``auto`` (find TMDB's limit) with its ceiling;
- the genre names: IMDb's closed set of 28 (:data:`IMDB_GENRES`), matched without
  regard to case (:func:`genre_names`);
- the data file format names (:data:`FORMATS`, :data:`COMPRESSIONS`,
  :func:`check_file_format`), which :class:`~tmdb_ingest.land.formats.FileFormat` and
  the settings both hold to.

A bad value raises :class:`~tmdb_ingest.errors.ConfigError` naming the setting and what
is allowed. Nothing here reads the environment or knows a default: the defaults are in
:data:`tmdb_ingest.config.options.OPTIONS`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tmdb_ingest.errors import ConfigError

__all__ = [
    "ANY_GENRE",
    "COMPRESSIONS",
    "FORMATS",
    "IMDB_GENRES",
    "Rate",
    "Secret",
    "Shard",
    "check_compress",
    "check_file_format",
    "check_format",
    "check_number",
    "genre_names",
    "rate_text",
    "require_credentials",
]


class Secret:
    """A credential whose value is never shown by ``repr`` or ``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @classmethod
    def of(cls, value: str | Secret | None, *, name: str = "secret") -> Secret | None:
        """``value`` as a Secret: a string is wrapped (an empty one is None)."""
        if value is None or isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return cls(value) if value else None
        raise ConfigError(name, "must be a string or Secret")

    def get(self) -> str:
        """Return the secret value; use it only where it is sent to TMDB."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def require_credentials(api_key: Secret | None, access_token: Secret | None) -> None:
    """Raise ConfigError unless an API key or an access token is given."""
    if not api_key and not access_token:
        raise ConfigError(
            "api_key", "set TMDB_API_KEY (v3 key) or TMDB_ACCESS_TOKEN (read access token)"
        )


_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``: the ids whose stable hash modulo ``count`` is ``index``.

    ``index`` is 0-based (``0/4`` .. ``3/4``). ``N/N`` is accepted as another name for
    ``0/N``, so 1-based numbering (``1/4`` .. ``4/4``) also covers every shard once.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or self.count > 10_000:
            raise ConfigError("shard", f"N must be 1..10000, got {self.count}")
        if not 0 <= self.index <= self.count:
            raise ConfigError("shard", f"I must be 0..N-1 (or N), got {self.index}/{self.count}")
        if self.index == self.count:
            object.__setattr__(self, "index", 0)

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse ``"I/N"``."""
        match = _SHARD_RE.match(text)
        if not match:
            raise ConfigError("shard", f"expected I/N such as 0/4, got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, value: Shard | str) -> Shard:
        """``value`` as a Shard: ``"I/N"`` is parsed."""
        if isinstance(value, Shard):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        raise ConfigError("shard", f"must be a Shard or 'I/N', got {value!r}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def slug(self) -> str:
        """A path segment naming the shard, e.g. ``shard-0-of-4``."""
        return f"shard-{self.index}-of-{self.count}"


def check_number(name: str, value: object, *, low: float, high: float) -> float:
    """``value`` if it is a number in ``low..high`` (booleans and NaN are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(name, f"must be a number in {low}..{high}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(name, f"must be in {low}..{high}, got {value!r}")
    return value


# The paces a limiter can keep: from one request in ten seconds to far above TMDB's limit.
_RATE_LOW, _RATE_HIGH = 0.1, 10_000


@dataclass(frozen=True, slots=True)
class Rate:
    """How fast to ask TMDB: a fixed pace, or ``auto`` with its ceiling.

    ``Rate.fixed(40)`` sends 40 requests a second; ``Rate.auto(max=50)`` finds TMDB's
    limit by itself (``adaptive``) and never goes above 50. ``per_second`` is the fixed
    pace or the ceiling.
    """

    per_second: float
    adaptive: bool = False

    def __post_init__(self) -> None:
        name = "max_rate" if self.adaptive else "rate"
        value = check_number(name, self.per_second, low=_RATE_LOW, high=_RATE_HIGH)
        object.__setattr__(self, "per_second", float(value))

    @classmethod
    def fixed(cls, per_second: float) -> Rate:
        """A fixed pace of ``per_second`` requests a second."""
        return cls(per_second)

    @classmethod
    def auto(cls, *, max: float) -> Rate:
        """Find TMDB's limit, at most ``max`` requests a second."""
        return cls(max, adaptive=True)

    @classmethod
    def of(cls, value: Rate | float | str, *, max_rate: float) -> Rate:
        """``value`` as a Rate: a number is a fixed pace; ``"auto"`` finds the limit, at
        most ``max_rate``; a Rate is kept as it is."""
        if isinstance(value, Rate):
            return value
        if isinstance(value, str):
            number = rate_text(value)
            return cls.auto(max=max_rate) if isinstance(number, str) else cls.fixed(number)
        return cls.fixed(value)

    @property
    def ceiling(self) -> float:
        """The most requests a second this rate may send."""
        return self.per_second

    def __str__(self) -> str:
        number = f"{self.per_second:g}"
        return f"auto (at most {number}/s)" if self.adaptive else f"{number}/s"


def rate_text(text: str) -> float | str:
    """The rate a user typed: a number, or ``"auto"``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise ConfigError("rate", f"expected a number or auto, got {text!r}")
    return value


# IMDb's genre names (title.basics.tsv's `genres`), the closed set `genero` draws from.
IMDB_GENRES: tuple[str, ...] = (
    "Action", "Adult", "Adventure", "Animation", "Biography", "Comedy", "Crime",
    "Documentary", "Drama", "Family", "Fantasy", "Film-Noir", "Game-Show", "History",
    "Horror", "Music", "Musical", "Mystery", "News", "Reality-TV", "Romance", "Sci-Fi",
    "Short", "Sport", "Talk-Show", "Thriller", "War", "Western",
)  # fmt: skip
ANY_GENRE = "*"
_CANONICAL = {name.lower(): name for name in IMDB_GENRES}


def genre_names(genres: str | Sequence[str]) -> tuple[str, ...]:
    """IMDb genre names in their own spelling, each once, in the order given.

    ``genres`` is a sequence of names or one comma-separated string. Names match without
    regard to case (``sci-fi`` is ``Sci-Fi``); ``*`` means any genre. An unknown name
    raises :class:`ConfigError` naming it and the closest of IMDb's names.
    """
    # A bare string is a Sequence[str] too: "Sci-Fi" must not become "S", "c", "i", ...
    items = genres.split(",") if isinstance(genres, str) else list(genres)
    if not all(isinstance(item, str) for item in items):
        raise ConfigError("genres", f"must be genre names, got {genres!r}")
    names: list[str] = []
    for item in (item.strip() for item in items):
        if not item:
            continue
        name = ANY_GENRE if item == ANY_GENRE else _CANONICAL.get(item.lower())
        if name is None:
            raise ConfigError("genres", _unknown_genre(item))
        names.append(name)
    if not names:
        raise ConfigError("genres", "give at least one genre name, e.g. Sci-Fi,Fantasy")
    return tuple(dict.fromkeys(names))


def _unknown_genre(name: str) -> str:
    closest = difflib.get_close_matches(name.lower(), _CANONICAL, n=1, cutoff=0.0)
    hint = f" (did you mean {_CANONICAL[closest[0]]!r}?)" if closest else ""
    return (
        f"unknown genre {name!r}{hint}; IMDb's genres are {', '.join(IMDB_GENRES)} "
        f"(any case; {ANY_GENRE} selects any)"
    )


FORMATS: tuple[str, ...] = ("json", "ndjson")
COMPRESSIONS: tuple[str | None, ...] = (None, "gzip")


def check_format(name: str, value: object) -> str:
    """``value`` if it names a data file format (``json``, ``ndjson``)."""
    if value not in FORMATS:
        raise ConfigError(name, f"expected json or ndjson, got {value!r}")
    return str(value)


def check_compress(name: str, value: object) -> str | None:
    """``value`` if it names a compression (None, ``gzip``)."""
    if value not in COMPRESSIONS:
        raise ConfigError(name, f"expected gzip or none, got {value!r}")
    return None if value is None else str(value)


def check_file_format(format: str, compress: str | None) -> None:
    """Raise ConfigError unless ``format`` and ``compress`` name a data file format."""
    check_format("format", format)
    check_compress("compress", compress)
