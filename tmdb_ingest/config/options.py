"""The one table of options: every setting once, with its flag, variable, default and rule.

:data:`OPTIONS` is where each default is written, and the only place: the
:class:`~tmdb_ingest.config.settings.Settings` fields, the ``tmdb-ingest`` flags, the
environment variables, the help and docs/configuration.md are derived from it, and the
parts that take a setting on their own (the TMDB client's policy, the lease's skew) take
its default from here (:func:`default`).

Each :class:`Option` has two functions: ``parse`` turns the text of a flag or a variable
into a value (raising ``ValueError`` with a reason), and ``check`` takes a value as a
program passes it and returns it normalised, or raises
:class:`~tmdb_ingest.errors.ConfigError` naming the setting and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmdb_ingest.config.values import (
    Rate,
    Secret,
    Shard,
    check_compress,
    check_format,
    check_number,
    genre_names,
    rate_text,
)
from tmdb_ingest.errors import ConfigError

__all__ = [
    "DEFAULT_GENRES",
    "DEFAULT_PREFIX",
    "DEFAULT_TMDB_URL",
    "DEFAULT_VOTES_ABOVE",
    "OPTION",
    "OPTIONS",
    "Option",
    "default",
]

DEFAULT_TMDB_URL = "https://api.themoviedb.org/3"
DEFAULT_PREFIX = "Raw/TMDB/JSON"
DEFAULT_GENRES: tuple[str, ...] = ("Sci-Fi", "Fantasy")
DEFAULT_VOTES_ABOVE = 1000

Check = Callable[[str, Any], Any]


@dataclass(frozen=True, slots=True)
class Option:
    """One setting as users see it: the :class:`Settings` field ``name``, its command-line
    ``flag`` and environment variable ``env`` (either may be None), the ``parse`` function
    from text (raising ``ValueError`` with a reason), the ``check`` of a value (called
    with the name, returning the value normalised, raising ``ConfigError``), the default
    and the help.

    ``section`` groups options in the help and the docs; ``commands`` are the CLI
    subcommands that take the flag; ``shown`` is how the default reads in the docs when
    the value alone would not say it; ``secret`` options never show their value.
    """

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    check: Check
    section: str
    flag: str | None
    env: str | None
    metavar: str | None = None
    commands: tuple[str, ...] = ("run",)
    shown: str | None = None
    secret: bool = False

    @property
    def default_text(self) -> str:
        """The default as the docs and the help show it."""
        if self.shown is not None:
            return self.shown
        value = self.default
        if isinstance(value, Rate):
            value = value.per_second
        if isinstance(value, tuple):
            return ",".join(value) or "none"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return "none" if value is None else str(value)


# --- parsing text (a flag, a variable) ---------------------------------------------------


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if math.isnan(value):
        raise ValueError(f"expected a number, got {text!r}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _format(text: str) -> str:
    return check_format("format", text.strip())


def _compress(text: str) -> str | None:
    value = text.strip().lower()
    return check_compress("compress", None if value == "none" else value)


def _text(text: str) -> str:
    return text.strip()


# --- checking values (as programs pass them) ----------------------------------------------


def _any(_name: str, value: Any) -> Any:
    return value


def _in_range(low: float, high: float) -> Check:
    return lambda name, value: check_number(name, value, low=low, high=high)


def _whole_in(low: int, high: int) -> Check:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"must be a whole number in {low}..{high}, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(name, f"must be in {low}..{high}, got {value}")
        return value

    return check


def _optional(check: Check) -> Check:
    return lambda name, value: None if value is None else check(name, value)


def _matching(pattern: str, what: str, *, strip: str = "") -> Check:
    compiled = re.compile(pattern)

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not compiled.match(value):
            raise ConfigError(name, f"{what}: {value!r}")
        return value.rstrip(strip) if strip else value

    return check


def _path(_name: str, value: Any) -> Path | None:
    return None if value is None else Path(value)


def _prefix(name: str, value: Any) -> str:
    prefix = value.strip("/") if isinstance(value, str) else ""
    if not prefix or any(not part or part.startswith("_") for part in prefix.split("/")):
        raise ConfigError(
            name, f"must be a non-empty path whose parts do not start with '_': {value!r}"
        )
    return prefix


def _state_prefix(name: str, value: Any) -> str:
    prefix = value.strip("/") if isinstance(value, str) else ""
    if not prefix or not any(part.startswith("_") for part in prefix.split("/")):
        raise ConfigError(name, f"must be a path with a part starting with '_': {value!r}")
    return prefix


def _ceiling(_name: str, value: Any) -> float:
    return Rate.auto(max=value).ceiling  # the range is the Rate's own


def _genres(_name: str, value: Any) -> tuple[str, ...]:
    return genre_names(value)


def _appended(name: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    append = tuple(item.strip() for item in items if item.strip())
    if append and not re.match(r"^[a-z_]+(,[a-z_]+)*$", ",".join(append)):
        raise ConfigError(name, f"expected names such as credits,videos, got {append!r}")
    return append


def _secret(name: str, value: Any) -> Secret | None:
    return Secret.of(value, name=name)


def _shard(_name: str, value: Any) -> Shard:
    return Shard.of(value)


# --- the table ----------------------------------------------------------------------------

_DERIVED = "derived"


def _option(
    name: str, default: Any, help: str, parse: Callable[[str], Any] = _text,
    check: Check = _any, *, section: str, flag: str | None = _DERIVED,
    env: str | None = _DERIVED, **more: Any,
) -> Option:  # fmt: skip
    """An :class:`Option` whose flag and variable follow the name unless given."""
    return Option(
        name, default, help, parse, check, section,
        flag=f"--{name.replace('_', '-')}" if flag == _DERIVED else flag,
        env=f"TMDB_INGEST_{name.upper()}" if env == _DERIVED else env,
        **more,
    )  # fmt: skip


_BOTH = ("select", "run")
_STATUS = ("run", "status")
_URL = r"^https?://[^\s/]+"
# fmt: off
OPTIONS: tuple[Option, ...] = (
    # where the data goes
    _option("bucket", None, "the S3 bucket of the lake (Lambda: the CSV's bucket)",
            check=_optional(_matching(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$",
                                      "not a valid S3 bucket name")),
            section="output", metavar="NAME", commands=_STATUS),
    _option("out_dir", None, "a local folder instead of a bucket, laid out the same", Path, _path,
            section="output", metavar="DIR", commands=_STATUS),
    _option("prefix", DEFAULT_PREFIX, "the data files' folder in the bucket or local folder",
            check=_prefix, section="output", metavar="P", commands=_STATUS),
    _option("state_prefix", None, "the folder of run state, leases and reports",
            check=_optional(_state_prefix), section="output", metavar="P",
            shown="_state beside the prefix", commands=_STATUS),
    _option("format", "json", "json: one array per file; ndjson: one object per line",
            _format, check_format, section="output", metavar="json|ndjson"),
    _option("compress", None, "gzip: compress data files (.gz added to their names)",
            _compress, check_compress, section="output", metavar="gzip", shown="none"),
    _option("s3_endpoint_url", None, "S3 endpoint, for moto, MinIO or LocalStack",
            check=_optional(_matching(r"^https?://\S+$", "must be an http(s) URL, got")),
            section="output", env="AWS_ENDPOINT_URL_S3", metavar="URL",
            commands=("select", "run", "status"), shown="AWS's"),
    # what to select
    _option("genres", DEFAULT_GENRES, "genre names, comma-separated; * selects any genre",
            _names, _genres, section="selection", metavar="A,B", commands=_BOTH),
    _option("votes_above", DEFAULT_VOTES_ABOVE, "more votes than this; -1 selects any, "
            "nulls included", _whole, _whole_in(-1, 10**10), section="selection",
            metavar="N", commands=_BOTH),
    # how fast (the Rate itself is made by Settings: "auto" takes max_rate as its ceiling)
    _option("rate", Rate.fixed(40), "requests per second, or auto: find TMDB's limit (at "
            "most max rate)", rate_text, section="rate", metavar="N|auto"),
    _option("max_rate", 50.0, "the ceiling of --rate auto, requests per second", _number,
            _ceiling, section="rate", metavar="N"),
    _option("concurrency", 20, "requests in flight at most", _whole, _whole_in(1, 1_000),
            section="rate", metavar="N"),
    _option("batch_size", 100, "movies per data file", _whole, _whole_in(1, 10_000),
            section="rate", metavar="N"),
    # which run, which part of it, how long
    _option("run_id", None, "resume this run (status: show it)",
            check=_optional(_matching(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$",
                                      "1-128 of A-Z a-z 0-9 . _ - starting with a letter "
                                      "or digit")),
            section="run", metavar="ID", shown="derived from the inputs and the date",
            commands=_STATUS),
    _option("shard", Shard(), "only the ids of shard I of N: I is 0..N-1; N/N is 0/N, so "
            "1..N numbering also covers each shard once (the summary shows 0/N)", Shard.parse,
            _shard, section="run", metavar="I/N"),
    _option("time_budget", None, "seconds; stop and save in time, then exit 3", _number,
            _optional(_in_range(1.0, 7 * 24 * 3600)), section="run", metavar="S",
            shown="none"),
    # TMDB
    _option("tmdb_url", DEFAULT_TMDB_URL, "TMDB's API root (the emulator's, in tests)",
            check=_matching(_URL, "must be an http(s) URL, got", strip="/"),
            section="tmdb", env="TMDB_URL", metavar="URL"),
    _option("api_key", None, "TMDB v3 API key, sent as the api_key parameter", Secret,
            _secret, section="tmdb", flag=None, env="TMDB_API_KEY", secret=True),
    _option("access_token", None, "TMDB read access token, sent as Bearer", Secret,
            _secret, section="tmdb", flag=None, env="TMDB_ACCESS_TOKEN", secret=True),
    _option("language", None, "answer language, e.g. en-US",
            check=_optional(_matching(r"^[a-z]{2}(-[A-Z]{2})?$",
                                      "expected xx or xx-XX such as en-US, got")),
            section="tmdb", metavar="xx-XX", shown="TMDB's"),
    _option("append_to_response", (), "extra parts of each movie, e.g. credits,videos",
            _names, _appended, section="tmdb", metavar="A,B"),
    # tuning: timeouts, retries, uploads, lease
    _option("connect_timeout", 5.0, "seconds to connect to TMDB", _number,
            _in_range(0.1, 300), section="tuning", metavar="S"),
    _option("request_timeout", 15.0, "seconds for one TMDB request", _number,
            _in_range(0.1, 600), section="tuning", metavar="S"),
    _option("max_attempts", 6, "attempts per movie before it is reported failed", _whole,
            _whole_in(1, 100), section="tuning", metavar="N"),
    _option("max_retry_wait", 60.0, "seconds of error backoff per movie, in all", _number,
            _in_range(0, 3600), section="tuning", metavar="S"),
    _option("backoff_initial", 0.5, "first retry backoff, seconds", _number,
            _in_range(0, 600), section="tuning", metavar="S"),
    _option("backoff_max", 20.0, "longest retry backoff, seconds", _number,
            _in_range(0, 3600), section="tuning", metavar="S"),
    _option("upload_concurrency", 4, "uploads in flight at most", _whole, _whole_in(1, 64),
            section="tuning", metavar="N"),
    _option("lease_ttl", 30.0, "seconds a run's lease lasts unless renewed", _number,
            _in_range(3.0, 3600), section="tuning", metavar="S"),
    _option("lease_skew", 5.0, "seconds an expired lease is still respected (clock skew "
            "between machines)", _number, _in_range(0.0, 600), section="tuning",
            metavar="S"),
)
# fmt: on
OPTION = {option.name: option for option in OPTIONS}


def default(name: str) -> Any:
    """The default of setting ``name``, for parts that take it on their own."""
    return OPTION[name].default
