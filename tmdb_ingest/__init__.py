"""tmdb_ingest: pull movie details from TMDB into S3 as JSON batches, fast and exactly once."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tmdb-ingest")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
