"""tmdb_ingest: pull movie details from TMDB into S3 as JSON batches, fast and exactly once.

The public face::

    from tmdb_ingest import Settings, ingest_csv

    settings = Settings(bucket="my-lake", api_key="...")
    summary = await ingest_csv("movies.csv", settings)   # or ingest(ids, settings)

Everything else lives in modules named for one idea each: ``selection``, ``tmdb``,
``ratelimit``, ``batching``, ``sinks``, ``state``, ``pipeline``, ``cli``,
``lambda_handler`` and ``emulator``.
"""

import time as _time

# When the process started using the package: the CLI counts its time budget from here.
_STARTED_AT = _time.monotonic()

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

from tmdb_ingest.errors import (  # noqa: E402
    AuthError,
    ConfigError,
    FatalError,
    InputError,
    SinkError,
    TmdbIngestError,
)
from tmdb_ingest.pipeline import ingest, ingest_csv  # noqa: E402
from tmdb_ingest.ratelimit import Limiter  # noqa: E402
from tmdb_ingest.selection import Selection, select_ids, select_ids_async  # noqa: E402
from tmdb_ingest.settings import Secret, Settings, Shard  # noqa: E402
from tmdb_ingest.sinks import LocalSink, S3Sink, Sink  # noqa: E402
from tmdb_ingest.summary import Summary  # noqa: E402

try:
    __version__ = version("tmdb-ingest")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "AuthError",
    "ConfigError",
    "FatalError",
    "InputError",
    "Limiter",
    "LocalSink",
    "S3Sink",
    "Secret",
    "Selection",
    "Settings",
    "Shard",
    "Sink",
    "SinkError",
    "Summary",
    "TmdbIngestError",
    "__version__",
    "ingest",
    "ingest_csv",
    "select_ids",
    "select_ids_async",
]
