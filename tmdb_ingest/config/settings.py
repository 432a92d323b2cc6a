"""One frozen, validated settings object for a run.

Every field is checked when the object is made; a bad value raises
:class:`~tmdb_ingest.errors.ConfigError` naming the field and what is allowed. The
secrets (API key, access token) are held in :class:`Secret`, whose ``repr`` and ``str``
never show the value, so settings can be logged safely.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmdb_ingest.errors import ConfigError

__all__ = [
    "DEFAULT_GENRES",
    "DEFAULT_PREFIX",
    "DEFAULT_TMDB_URL",
    "DEFAULT_VOTES_ABOVE",
    "OPTIONS",
    "Option",
    "Secret",
    "Settings",
    "Shard",
]

DEFAULT_TMDB_URL = "https://api.themoviedb.org/3"
DEFAULT_PREFIX = "Raw/TMDB/JSON"
DEFAULT_GENRES: tuple[str, ...] = ("Sci-Fi", "Fantasy")
DEFAULT_VOTES_ABOVE = 1000

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")
_APPEND_RE = re.compile(r"^[a-z_]+(,[a-z_]+)*$")
_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class Secret:
    """A credential whose value is never shown by ``repr`` or ``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

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

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def slug(self) -> str:
        """A path segment naming the shard, e.g. ``shard-0-of-4``."""
        return f"shard-{self.index}-of-{self.count}"


def _positive(name: str, value: float, *, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(name, f"must be a number in {low}..{high}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(name, f"must be in {low}..{high}, got {value!r}")


def _int(name: str, value: int, *, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be a whole number in {low}..{high}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(name, f"must be in {low}..{high}, got {value}")


# --- the option table: every setting once, with its flag, variable, parser and default ---


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


def _rate(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _number(text)
    except ValueError:
        raise ValueError(f"expected a number or auto, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _format(text: str) -> str:
    if text.strip() not in ("json", "ndjson"):
        raise ValueError(f"expected json or ndjson, got {text!r}")
    return text.strip()


def _compress(text: str) -> str | None:
    value = text.strip().lower()
    if value not in ("gzip", "none"):
        raise ValueError(f"expected gzip or none, got {text!r}")
    return None if value == "none" else value


def _text(text: str) -> str:
    return text.strip()


@dataclass(frozen=True, slots=True)
class Option:
    """One setting as users see it: the :class:`Settings` field ``name``, its command-line
    ``flag`` and environment variable ``env`` (either may be None), the ``parse`` function
    from text (raising ``ValueError`` with a reason), the default, and the help.

    ``section`` groups options in the help and the docs; ``commands`` are the CLI
    subcommands that take the flag; ``shown`` is how the default reads in the docs when
    the value alone would not say it; ``secret`` options never show their value.
    """

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]
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
        if isinstance(value, tuple):
            return ",".join(value) or "none"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return "none" if value is None else str(value)


_DERIVED = "derived"


def _option(
    name: str, default: Any, help: str, parse: Callable[[str], Any] = _text, *,
    section: str, flag: str | None = _DERIVED, env: str | None = _DERIVED, **more: Any,
) -> Option:  # fmt: skip
    """An :class:`Option` whose flag and variable follow the name unless given."""
    return Option(
        name, default, help, parse, section,
        flag=f"--{name.replace('_', '-')}" if flag == _DERIVED else flag,
        env=f"TMDB_INGEST_{name.upper()}" if env == _DERIVED else env,
        **more,
    )  # fmt: skip


_BOTH = ("select", "run")
_STATUS = ("run", "status")
# fmt: off
OPTIONS: tuple[Option, ...] = (
    # where the data goes
    _option("bucket", None, "the S3 bucket to write to (Lambda: the CSV's bucket)",
            section="output", metavar="NAME", commands=_STATUS),
    _option("out_dir", None, "write the same layout to a local folder instead", Path,
            section="output", metavar="DIR", commands=_STATUS),
    _option("prefix", DEFAULT_PREFIX, "where data files go, in the bucket or folder",
            section="output", metavar="P", commands=_STATUS),
    _option("state_prefix", None, "where run state, the lease and the reports go",
            section="output", metavar="P", shown="_state beside the prefix", commands=_STATUS),
    _option("format", "json", "json: one array per file; ndjson: one object per line",
            _format, section="output", metavar="json|ndjson"),
    _option("compress", None, "gzip: compress data files (.gz added to their names)",
            _compress, section="output", metavar="gzip", shown="none"),
    _option("s3_endpoint_url", None, "S3 endpoint, for moto, MinIO or LocalStack",
            section="output", env="AWS_ENDPOINT_URL_S3", metavar="URL",
            commands=("select", "run", "status"),
            shown="AWS's"),
    # what to select
    _option("genres", DEFAULT_GENRES, "genre names, comma-separated; * selects any genre",
            _names, section="selection", metavar="A,B", commands=_BOTH),
    _option("votes_above", DEFAULT_VOTES_ABOVE, "more votes than this; -1 selects any, "
            "nulls included", _whole, section="selection", metavar="N", commands=_BOTH),
    # how fast
    _option("rate", 40.0, "requests per second, or auto: find TMDB's limit (at most "
            "max rate)", _rate, section="rate", metavar="N|auto"),
    _option("max_rate", 50.0, "the ceiling of --rate auto, requests per second", _number,
            section="rate", metavar="N"),
    _option("concurrency", 20, "requests in flight at most", _whole, section="rate",
            metavar="N"),
    _option("batch_size", 100, "movies per data file", _whole, section="rate", metavar="N"),
    # which run, which part of it, how long
    _option("run_id", None, "resume this run (status: show it)", section="run", metavar="ID",
            shown="derived from the inputs and the date", commands=_STATUS),
    _option("shard", Shard(), "only the ids of shard I of N (0-based)", Shard.parse,
            section="run", metavar="I/N"),
    _option("time_budget", None, "seconds; stop and save in time, then exit 3", _number,
            section="run", metavar="S", shown="none"),
    # TMDB
    _option("tmdb_url", DEFAULT_TMDB_URL, "TMDB's API root (the emulator's, in tests)",
            section="tmdb", env="TMDB_URL", metavar="URL"),
    _option("api_key", None, "TMDB v3 API key, sent as the api_key parameter", Secret,
            section="tmdb", flag=None, env="TMDB_API_KEY", secret=True),
    _option("access_token", None, "TMDB read access token, sent as Bearer", Secret,
            section="tmdb", flag=None, env="TMDB_ACCESS_TOKEN", secret=True),
    _option("language", None, "answer language, e.g. en-US", section="tmdb",
            metavar="xx-XX", shown="TMDB's"),
    _option("append_to_response", (), "extra parts of each movie, e.g. credits,videos",
            _names, section="tmdb", metavar="A,B"),
    # tuning: timeouts, retries, uploads, lease
    _option("connect_timeout", 5.0, "seconds to connect to TMDB", _number,
            section="tuning", metavar="S"),
    _option("request_timeout", 15.0, "seconds for one TMDB request", _number,
            section="tuning", metavar="S"),
    _option("max_attempts", 6, "attempts per movie before it is reported failed", _whole,
            section="tuning", metavar="N"),
    _option("max_retry_wait", 60.0, "seconds of error backoff per movie, in all", _number,
            section="tuning", metavar="S"),
    _option("backoff_initial", 0.5, "first retry backoff, seconds", _number,
            section="tuning", metavar="S"),
    _option("backoff_max", 20.0, "longest retry backoff, seconds", _number,
            section="tuning", metavar="S"),
    _option("upload_concurrency", 4, "uploads in flight at most", _whole,
            section="tuning", metavar="N"),
    _option("lease_ttl", 30.0, "seconds a run's lease lasts unless renewed", _number,
            section="tuning", metavar="S"),
    _option("lease_skew", 5.0, "seconds an expired lease is still respected (clock skew "
            "between machines)", _number, section="tuning", metavar="S"),
)
# fmt: on
OPTION = {option.name: option for option in OPTIONS}
_D = {option.name: option.default for option in OPTIONS}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a run needs, checked when made.

    Exactly one of ``bucket`` and ``out_dir`` names the sink for :func:`ingest`
    (selection alone needs neither). Secrets are :class:`Secret` objects and never
    appear in ``repr``. Every default, and what each field means, is in :data:`OPTIONS`.
    """

    # where the data goes
    bucket: str | None = _D["bucket"]
    out_dir: Path | None = _D["out_dir"]
    prefix: str = _D["prefix"]
    s3_endpoint_url: str | None = _D["s3_endpoint_url"]
    # what to select
    genres: tuple[str, ...] = _D["genres"]
    votes_above: int = _D["votes_above"]
    state_prefix: str | None = _D["state_prefix"]
    format: str = _D["format"]
    compress: str | None = _D["compress"]
    # how fast
    rate: float | str = _D["rate"]
    max_rate: float = _D["max_rate"]
    concurrency: int = _D["concurrency"]
    batch_size: int = _D["batch_size"]
    # which run, which part of it, how long
    run_id: str | None = _D["run_id"]
    shard: Shard = _D["shard"]
    time_budget: float | None = _D["time_budget"]
    # TMDB
    tmdb_url: str = _D["tmdb_url"]
    api_key: Secret | None = field(default=_D["api_key"], repr=False)
    access_token: Secret | None = field(default=_D["access_token"], repr=False)
    language: str | None = _D["language"]
    append_to_response: tuple[str, ...] = _D["append_to_response"]
    # tuning: timeouts, retries, uploads, lease
    connect_timeout: float = _D["connect_timeout"]
    request_timeout: float = _D["request_timeout"]
    max_attempts: int = _D["max_attempts"]
    max_retry_wait: float = _D["max_retry_wait"]
    backoff_initial: float = _D["backoff_initial"]
    backoff_max: float = _D["backoff_max"]
    upload_concurrency: int = _D["upload_concurrency"]
    lease_ttl: float = _D["lease_ttl"]
    lease_skew: float = _D["lease_skew"]

    def __post_init__(self) -> None:
        if self.bucket is not None and self.out_dir is not None:
            raise ConfigError("bucket", "give either a bucket or an out_dir, not both")
        if self.bucket is not None and not _BUCKET_RE.match(self.bucket):
            raise ConfigError("bucket", f"not a valid S3 bucket name: {self.bucket!r}")
        if self.out_dir is not None and not isinstance(self.out_dir, Path):
            object.__setattr__(self, "out_dir", Path(self.out_dir))
        prefix = self.prefix.strip("/")
        if not prefix or any(not part or part.startswith("_") for part in prefix.split("/")):
            raise ConfigError(
                "prefix",
                f"must be a non-empty path whose parts do not start with '_': {self.prefix!r}",
            )
        object.__setattr__(self, "prefix", prefix)
        genres = tuple(g.strip() for g in self.genres if g and g.strip())
        if not genres or any("," in g or "|" in g for g in genres):
            raise ConfigError("genres", f"must be one or more genre names, got {self.genres!r}")
        object.__setattr__(self, "genres", genres)
        _int("votes_above", self.votes_above, low=-1, high=10**10)
        if self.rate != "auto":
            _positive("rate", self.rate, low=0.1, high=10_000)  # type: ignore[arg-type]
        _positive("max_rate", self.max_rate, low=0.1, high=10_000)
        if self.state_prefix is not None:
            state_prefix = self.state_prefix.strip("/")
            if not state_prefix or not any(p.startswith("_") for p in state_prefix.split("/")):
                raise ConfigError(
                    "state_prefix",
                    f"must be a path with a part starting with '_': {self.state_prefix!r}",
                )
            if state_prefix == prefix or state_prefix.startswith(prefix + "/"):
                raise ConfigError("state_prefix", f"must not lie inside the data prefix {prefix!r}")
            object.__setattr__(self, "state_prefix", state_prefix)
        if self.format not in ("json", "ndjson"):
            raise ConfigError("format", f"must be json or ndjson, got {self.format!r}")
        if self.compress not in (None, "gzip"):
            raise ConfigError("compress", f"must be gzip or none, got {self.compress!r}")
        _positive("lease_ttl", self.lease_ttl, low=3.0, high=3600)
        _positive("lease_skew", self.lease_skew, low=0.0, high=600)
        _int("concurrency", self.concurrency, low=1, high=1_000)
        _int("batch_size", self.batch_size, low=1, high=10_000)
        if self.run_id is not None and not _RUN_ID_RE.match(self.run_id):
            raise ConfigError(
                "run_id",
                f"1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit: {self.run_id!r}",
            )
        if not isinstance(self.shard, Shard):
            raise ConfigError("shard", f"must be a Shard, got {self.shard!r}")
        if self.time_budget is not None:
            _positive("time_budget", self.time_budget, low=1.0, high=7 * 24 * 3600)
        if not re.match(r"^https?://[^\s/]+", self.tmdb_url):
            raise ConfigError("tmdb_url", f"must be an http(s) URL, got {self.tmdb_url!r}")
        object.__setattr__(self, "tmdb_url", self.tmdb_url.rstrip("/"))
        if self.s3_endpoint_url is not None and not re.match(
            r"^https?://\S+$", self.s3_endpoint_url
        ):
            raise ConfigError(
                "s3_endpoint_url", f"must be an http(s) URL, got {self.s3_endpoint_url!r}"
            )
        for name in ("api_key", "access_token"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Secret(value) if value else None)
            elif value is not None and not isinstance(value, Secret):
                raise ConfigError(name, "must be a string or Secret")
        if self.language is not None and not _LANGUAGE_RE.match(self.language):
            raise ConfigError(
                "language", f"expected xx or xx-XX such as en-US, got {self.language!r}"
            )
        append = tuple(a.strip() for a in self.append_to_response if a.strip())
        if append and not _APPEND_RE.match(",".join(append)):
            raise ConfigError(
                "append_to_response", f"expected names such as credits,videos, got {append!r}"
            )
        object.__setattr__(self, "append_to_response", append)
        _positive("connect_timeout", self.connect_timeout, low=0.1, high=300)
        _positive("request_timeout", self.request_timeout, low=0.1, high=600)
        _int("max_attempts", self.max_attempts, low=1, high=100)
        _positive("max_retry_wait", self.max_retry_wait, low=0, high=3600)
        _positive("backoff_initial", self.backoff_initial, low=0, high=600)
        _positive("backoff_max", self.backoff_max, low=0, high=3600)
        _int("upload_concurrency", self.upload_concurrency, low=1, high=64)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def require_sink(self) -> None:
        """Raise ConfigError unless exactly one sink is named."""
        if self.bucket is None and self.out_dir is None:
            raise ConfigError("bucket", "a run needs --bucket NAME or --out-dir DIR")

    def require_credentials(self) -> None:
        """Raise ConfigError unless an API key or an access token is set."""
        if not self.api_key and not self.access_token:
            raise ConfigError(
                "api_key", "set TMDB_API_KEY (v3 key) or TMDB_ACCESS_TOKEN (read access token)"
            )

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        /,
        *,
        flags: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Settings from, lowest to highest: defaults, the environment, ``flags``, ``overrides``.

        The environment is read through each option's variable in :data:`OPTIONS`
        (``TMDB_INGEST_*``, ``TMDB_URL``, ``AWS_ENDPOINT_URL_S3``, ``TMDB_API_KEY``,
        ``TMDB_ACCESS_TOKEN``); an empty variable counts as unset. ``flags`` are values
        the user gave on the command line, by field name. A bad value raises
        :class:`ConfigError` labelled as the user wrote it: ``--batch-size: ...`` for a
        flag, ``TMDB_INGEST_BATCH_SIZE=0: ...`` for a variable (a secret's value is never
        shown); ``.field`` stays the field name. Naming one sink (``bucket`` or
        ``out_dir``) in ``flags`` or ``overrides`` ignores the other's variable.
        """
        env = os.environ if env is None else env
        given = {**(flags or {}), **overrides}
        values: dict[str, Any] = {}
        labels = {name: OPTION[name].flag or name for name in flags or {} if name in OPTION}
        sink_given = "bucket" in given or "out_dir" in given
        for option in OPTIONS:
            raw = env.get(option.env, "") if option.env else ""
            if not raw.strip() or option.name in given:
                continue
            if sink_given and option.name in ("bucket", "out_dir"):
                continue
            label = option.env if option.secret else f"{option.env}={raw}"
            try:
                values[option.name] = option.parse(raw)
            except ValueError as exc:
                raise _labelled(str(label), exc, option.name) from None
            labels[option.name] = str(label)
        values.update(given)
        try:
            return cls(**values)
        except ConfigError as exc:
            label = labels.get(exc.field)
            if label is None:
                raise
            raise _labelled(label, exc, exc.field) from None

    def secrets(self) -> tuple[str, ...]:
        """The secret values, for redaction filters."""
        return tuple(s.get() for s in (self.api_key, self.access_token) if s)


def _labelled(label: str, exc: ValueError, field: str) -> ConfigError:
    """A ConfigError saying ``label: reason`` (``reason`` from ``exc``), for ``field``."""
    reason = str(exc)
    if isinstance(exc, ConfigError) and reason.startswith(f"{exc.field}: "):
        reason = reason[len(exc.field) + 2 :]
    error = ConfigError(label, reason)
    error.field = field
    return error
