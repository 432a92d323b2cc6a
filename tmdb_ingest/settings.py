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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmdb_ingest.errors import ConfigError

__all__ = ["DEFAULT_GENRES", "DEFAULT_PREFIX", "DEFAULT_TMDB_URL", "Secret", "Settings", "Shard"]

DEFAULT_TMDB_URL = "https://api.themoviedb.org/3"
DEFAULT_PREFIX = "Raw/TMDB/JSON"
DEFAULT_GENRES: tuple[str, ...] = ("Sci-Fi", "Fantasy")

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


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a run needs, checked when made.

    Exactly one of ``bucket`` and ``out_dir`` names the sink for :func:`ingest`
    (selection alone needs neither). Secrets are :class:`Secret` objects and never
    appear in ``repr``.
    """

    # where the data goes
    bucket: str | None = None
    out_dir: Path | None = None
    prefix: str = DEFAULT_PREFIX
    s3_endpoint_url: str | None = None
    # what to select
    genres: tuple[str, ...] = DEFAULT_GENRES
    votes_above: int = 1000
    state_prefix: str | None = None  # default: a "_state" folder beside the data prefix
    format: str = "json"  # "json" (one array per file) or "ndjson" (one object per line)
    compress: str | None = None  # None or "gzip" (".gz" added to data file names)
    # how fast
    rate: float | str = 40.0  # requests per second, or "auto" (found, at most max_rate)
    max_rate: float = 50.0
    concurrency: int = 20
    batch_size: int = 100
    # which run, which part of it, how long
    run_id: str | None = None
    shard: Shard = field(default_factory=Shard)
    time_budget: float | None = None
    # TMDB
    tmdb_url: str = DEFAULT_TMDB_URL
    api_key: Secret | None = field(default=None, repr=False)
    access_token: Secret | None = field(default=None, repr=False)
    language: str | None = None
    append_to_response: tuple[str, ...] = ()
    # tuning: timeouts and retries
    connect_timeout: float = 5.0
    request_timeout: float = 15.0
    max_attempts: int = 6
    max_retry_wait: float = 60.0
    backoff_initial: float = 0.5
    backoff_max: float = 20.0
    upload_concurrency: int = 4
    lease_ttl: float = 30.0

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

    @property
    def state_root(self) -> str:
        """Where run state lives: ``state_prefix``, else ``_state`` beside the data prefix."""
        if self.state_prefix is not None:
            return self.state_prefix
        parent = self.prefix.rpartition("/")[0]
        return f"{parent}/_state" if parent else "_state"

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
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``TMDB_INGEST_*`` variables (named after the CLI options).

        Also reads ``TMDB_URL``, ``AWS_ENDPOINT_URL_S3``, ``TMDB_API_KEY`` and
        ``TMDB_ACCESS_TOKEN``. ``overrides`` win over the environment.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}

        def number(name: str, key: str, kind: type) -> None:
            raw = env.get(key)
            if raw is None or raw.strip() == "":
                return
            try:
                values[name] = kind(raw)
            except ValueError:
                raise ConfigError(name, f"{key}={raw!r} is not a {kind.__name__}") from None

        for name, key in (
            ("bucket", "TMDB_INGEST_BUCKET"),
            ("prefix", "TMDB_INGEST_PREFIX"),
            ("run_id", "TMDB_INGEST_RUN_ID"),
            ("language", "TMDB_INGEST_LANGUAGE"),
            ("tmdb_url", "TMDB_URL"),
            ("s3_endpoint_url", "AWS_ENDPOINT_URL_S3"),
        ):
            if env.get(key):
                values[name] = env[key]
        number("rate", "TMDB_INGEST_RATE", float)
        number("concurrency", "TMDB_INGEST_CONCURRENCY", int)
        number("batch_size", "TMDB_INGEST_BATCH_SIZE", int)
        number("votes_above", "TMDB_INGEST_VOTES_ABOVE", int)
        number("upload_concurrency", "TMDB_INGEST_UPLOAD_CONCURRENCY", int)
        if env.get("TMDB_INGEST_GENRES"):
            values["genres"] = tuple(env["TMDB_INGEST_GENRES"].split(","))
        if env.get("TMDB_INGEST_APPEND_TO_RESPONSE"):
            values["append_to_response"] = tuple(env["TMDB_INGEST_APPEND_TO_RESPONSE"].split(","))
        if env.get("TMDB_INGEST_SHARD"):
            values["shard"] = Shard.parse(env["TMDB_INGEST_SHARD"])
        if env.get("TMDB_API_KEY"):
            values["api_key"] = Secret(env["TMDB_API_KEY"])
        if env.get("TMDB_ACCESS_TOKEN"):
            values["access_token"] = Secret(env["TMDB_ACCESS_TOKEN"])
        values.update(overrides)
        return cls(**values)

    def secrets(self) -> tuple[str, ...]:
        """The secret values, for redaction filters."""
        return tuple(s.get() for s in (self.api_key, self.access_token) if s)
