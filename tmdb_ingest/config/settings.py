"""One frozen, validated settings object for a run.

Every field is checked when the object is made, by its option's rule in
:data:`~tmdb_ingest.config.options.OPTIONS` (the value types check themselves, see
:mod:`tmdb_ingest.config.values`); a bad value raises
:class:`~tmdb_ingest.errors.ConfigError` naming the field and what is allowed. Fields take
what users write (``api_key="..."``, ``out_dir="lake"``, ``rate=40`` or ``"auto"``) and
hold the value types (:class:`Secret`, :class:`~pathlib.Path`, :class:`Rate`). The
secrets never show in ``repr`` or ``str``, so settings can be logged safely.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from tmdb_ingest.config.options import (
    DEFAULT_GENRES,
    DEFAULT_PREFIX,
    DEFAULT_TMDB_URL,
    DEFAULT_VOTES_ABOVE,
    OPTION,
    OPTIONS,
    Option,
)
from tmdb_ingest.config.values import Rate, Secret, Shard, require_credentials
from tmdb_ingest.errors import ConfigError

__all__ = [
    "DEFAULT_GENRES",
    "DEFAULT_PREFIX",
    "DEFAULT_TMDB_URL",
    "DEFAULT_VOTES_ABOVE",
    "OPTIONS",
    "Option",
    "Rate",
    "Secret",
    "Settings",
    "Shard",
]

_D = {option.name: option.default for option in OPTIONS}
In = TypeVar("In")
Out = TypeVar("Out")


class _Takes(Generic[In, Out]):
    """A field that takes ``In`` and holds ``Out`` (``api_key: str`` held as a Secret).

    Only for the type checker (dataclasses and mypy read ``__set__``'s argument as the
    constructor's): it stores what it is given, and ``Settings.__post_init__`` converts
    it with the option's check before anyone reads it.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: object | None, owner: type | None = None) -> Out:
        if obj is None:  # the dataclass asks for the default
            return _D[self._name]  # type: ignore[no-any-return]
        return obj.__dict__[self._name]  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: In) -> None:
        obj.__dict__[self._name] = value


_Path = str | os.PathLike[str]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a run needs, checked when made.

    Exactly one of ``bucket`` and ``out_dir`` names the sink for :func:`ingest`
    (selection alone needs neither). The secrets are held as :class:`Secret` objects,
    the rate as a :class:`Rate` (``--rate auto`` takes ``max_rate`` as its ceiling; a
    ``Rate.auto(max=...)`` given whole sets ``max_rate``). Every default, and what each
    field means, is in :data:`OPTIONS`.
    """

    # where the data goes
    bucket: str | None = _D["bucket"]
    out_dir: _Takes[_Path | None, Path | None] = _Takes()
    prefix: str = _D["prefix"]
    s3_endpoint_url: str | None = _D["s3_endpoint_url"]
    # what to select
    genres: _Takes[str | Sequence[str], tuple[str, ...]] = _Takes()
    votes_above: int = _D["votes_above"]
    state_prefix: str | None = _D["state_prefix"]
    format: str = _D["format"]
    compress: str | None = _D["compress"]
    # how fast
    rate: _Takes[Rate | float | str, Rate] = _Takes()
    max_rate: float = _D["max_rate"]
    concurrency: int = _D["concurrency"]
    batch_size: int = _D["batch_size"]
    # which run, which part of it, how long
    run_id: str | None = _D["run_id"]
    shard: _Takes[Shard | str, Shard] = _Takes()
    time_budget: float | None = _D["time_budget"]
    # TMDB
    tmdb_url: str = _D["tmdb_url"]
    api_key: _Takes[str | Secret | None, Secret | None] = _Takes()
    access_token: _Takes[str | Secret | None, Secret | None] = _Takes()
    language: str | None = _D["language"]
    append_to_response: _Takes[Sequence[str], tuple[str, ...]] = _Takes()
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
        for option in OPTIONS:
            value = option.check(option.name, getattr(self, option.name))
            object.__setattr__(self, option.name, value)
        if self.bucket is not None and self.out_dir is not None:
            raise ConfigError("bucket", "give either a bucket or an out_dir, not both")
        state, data = self.state_prefix, self.prefix
        if state is not None and (state == data or state.startswith(data + "/")):
            raise ConfigError("state_prefix", f"must not lie inside the data prefix {data!r}")
        # The rate and its ceiling are one value; max_rate says the ceiling too.
        rate = Rate.of(self.rate, max_rate=self.max_rate)
        object.__setattr__(self, "rate", rate)
        if rate.adaptive:
            object.__setattr__(self, "max_rate", rate.ceiling)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (and validated)."""
        if "max_rate" in changes and "rate" not in changes and self.rate.adaptive:
            changes["rate"] = "auto"  # a new ceiling for the same auto rate
        return dataclasses.replace(self, **changes)

    def require_sink(self) -> None:
        """Raise ConfigError unless exactly one sink is named."""
        if self.bucket is None and self.out_dir is None:
            raise ConfigError("bucket", "a run needs --bucket NAME or --out-dir DIR")

    def require_credentials(self) -> None:
        """Raise ConfigError unless an API key or an access token is set."""
        require_credentials(self.api_key, self.access_token)

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
