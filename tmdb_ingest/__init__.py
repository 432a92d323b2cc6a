"""tmdb_ingest: pull movie details from TMDB into S3 as JSON batches, fast and exactly once.

The public face::

    from tmdb_ingest import Settings, ingest_csv

    settings = Settings(bucket="my-lake", api_key="...")
    summary = await ingest_csv("movies.csv", settings)   # or ingest(ids, settings)
    summary = await refresh(settings)   # later: fetch again what TMDB changed since

Everything else lives in subpackages along the data's flow: ``config`` (settings,
credentials), ``selection`` (movies.csv to ids), ``fetch`` (the TMDB client, the pool, the
rate limiters), ``land`` (formats, sinks, the lander), ``run`` (layout, state, lease,
deadline, stopping, status), ``lake`` (the lake index, ``refresh``, the change list),
``api`` (``ingest``, ``ingest_csv``), and the entry points
``cli``, ``lambda_handler`` and ``emulator``.

The names below are loaded on first use (a module ``__getattr__``), so that ``import
tmdb_ingest`` and the CLI's start-up do not pay for polars, aiohttp and aiobotocore
before a command needs them.
"""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tmdb_ingest.api import ingest, ingest_csv
    from tmdb_ingest.config.settings import Secret, Settings, Shard
    from tmdb_ingest.config.values import Rate
    from tmdb_ingest.errors import (
        AuthError,
        ConfigError,
        FatalError,
        InputError,
        LeaseLost,
        RunBusy,
        SinkError,
        TmdbIngestError,
        TmdbUnreachable,
    )
    from tmdb_ingest.fetch.rate.limiter import Limiter
    from tmdb_ingest.lake.refresh import RefreshSummary, refresh
    from tmdb_ingest.land.sinks import LocalSink, S3Sink, Sink
    from tmdb_ingest.run.stopping import StopRequest
    from tmdb_ingest.selection.reader import Selection, select_ids, select_ids_async
    from tmdb_ingest.summary import Summary

    __version__: str

# public name -> the module that defines it
_LAZY = {
    **dict.fromkeys(
        ("AuthError", "ConfigError", "FatalError", "InputError", "LeaseLost", "RunBusy",
         "SinkError", "TmdbIngestError", "TmdbUnreachable"),
        "errors",
    ),
    **dict.fromkeys(("ingest", "ingest_csv"), "api"),
    "Limiter": "fetch.rate.limiter",
    **dict.fromkeys(("RefreshSummary", "refresh"), "lake.refresh"),
    **dict.fromkeys(("Selection", "select_ids", "select_ids_async"), "selection.reader"),
    **dict.fromkeys(("Secret", "Settings", "Shard"), "config.settings"),
    "Rate": "config.values",
    **dict.fromkeys(("LocalSink", "S3Sink", "Sink"), "land.sinks"),
    "StopRequest": "run.stopping",
    "Summary": "summary",
}  # fmt: skip

__all__ = [
    "AuthError",
    "ConfigError",
    "FatalError",
    "InputError",
    "LeaseLost",
    "Limiter",
    "LocalSink",
    "Rate",
    "RefreshSummary",
    "RunBusy",
    "S3Sink",
    "Secret",
    "Selection",
    "Settings",
    "Shard",
    "Sink",
    "SinkError",
    "StopRequest",
    "Summary",
    "TmdbIngestError",
    "TmdbUnreachable",
    "__version__",
    "ingest",
    "ingest_csv",
    "refresh",
    "select_ids",
    "select_ids_async",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use and keep it in the module."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: Any = version("tmdb-ingest")
        except PackageNotFoundError:  # a source tree that is not installed
            value = "0.0.0"
    elif name in _LAZY:
        value = getattr(_import_module(f"tmdb_ingest.{_LAZY[name]}"), name)
    else:
        raise AttributeError(f"module 'tmdb_ingest' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
